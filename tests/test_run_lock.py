"""Controller flock and target lock dir, for real: two holders, release, a lock left by a dead process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from safeapply.errors import LockedError
from safeapply.lock import controller_lock, target_lock
from safeapply.transport.local import LocalTransport


def test_controller_lock_excludes_second_holder(tmp_path: Path) -> None:
    with (controller_lock("web/1", "run1", tmp_path), pytest.raises(LockedError, match="run run1"),
          controller_lock("web/1", "run2", tmp_path)):
        pass
    with controller_lock("web/1", "run3", tmp_path):  # released: free again
        pass
    with controller_lock("a", "r", tmp_path), controller_lock("b", "r", tmp_path):
        pass  # different hosts do not block each other


def test_controller_lock_held_by_another_process(tmp_path: Path) -> None:
    code = ("import sys,time; from pathlib import Path; from safeapply.lock import controller_lock\n"
            "with controller_lock('h', 'other', Path(sys.argv[1])):\n"
            "    print('held', flush=True); sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(LockedError), controller_lock("h", "mine", tmp_path):
            pass
    finally:
        proc.kill()
        proc.wait()
    with controller_lock("h", "mine", tmp_path):  # the kernel released it with the dead process
        pass


def test_target_lock_via_transport(tmp_path: Path) -> None:
    t = LocalTransport("here")
    path = str(tmp_path / "run" / "lock")
    with target_lock(t, "run1", path):
        assert json.loads((Path(path) / "owner.json").read_text())["run_id"] == "run1"
        with pytest.raises(LockedError, match="run1"), target_lock(t, "run2", path):
            pass
    assert not Path(path).exists()


def test_target_lock_of_dead_local_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    lock = tmp_path / "lock"
    lock.mkdir()
    owner = {"run_id": "old", "controller": socket.gethostname(), "pid": int(dead.stdout)}
    (lock / "owner.json").write_text(json.dumps(owner))
    with target_lock(LocalTransport("here"), "new", str(lock)):
        assert json.loads((lock / "owner.json").read_text())["run_id"] == "new"
    alive = {"run_id": "live", "controller": socket.gethostname(), "pid": os.getpid()}
    lock.mkdir()
    (lock / "owner.json").write_text(json.dumps(alive))
    with pytest.raises(LockedError), target_lock(LocalTransport("here"), "new2", str(lock)):
        pass
