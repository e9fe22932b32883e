"""The molecule scenario (molecule/default) runs end to end against a real sandbox and leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's bin: molecule, ansible-*, safeapply
PREFIX = "satm"  # own prefix: never touches the suite's ("sat") or anyone else's sandboxes


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # molecule calls ansible-config, create.yml safeapply
    env["SAFEAPPLY_SANDBOX_PREFIX"] = PREFIX
    env["MOLECULE_EPHEMERAL_DIRECTORY"] = str(tmp_path / "molecule")  # not shared with a manual `molecule test`
    env["NO_COLOR"] = "1"
    return env


def _run(argv: list[str], env: dict[str, str], timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="molecule's sandboxes are systemd-nspawn hosts: run as root")
def test_molecule_default_scenario() -> None:
    # a short directory: SSH control sockets live in it, and a Unix socket path has at most 107 bytes
    work = Path(tempfile.mkdtemp(prefix="mol-", dir="/tmp"))
    env = _env(work)
    cleanup = _run([str(BIN / "safeapply"), "sandbox", "down", "--all"], env, 300)  # a killed earlier run
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    try:
        proc = _run([str(BIN / "molecule"), "test"], env, 1800)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
        assert "successful=7" in proc.stdout + proc.stderr  # destroy syntax create converge idempotence verify destroy
    finally:
        left = _run([str(BIN / "safeapply"), "sandbox", "leftovers"], env, 120)
        if left.returncode != 0:
            _run([str(BIN / "safeapply"), "sandbox", "down", "--all"], env, 300)
        shutil.rmtree(work, ignore_errors=True)
    assert left.returncode == 0, f"molecule left sandboxes behind: {left.stdout}{left.stderr}"
