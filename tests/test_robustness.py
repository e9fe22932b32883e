"""Robustness promises (issue 11 item 14): odd input never hangs or blows up safeapply, its state dir never
takes a shared directory away from others, one host's lock is never another's, and a prune never leaves a
snapshot pointing at content it removed."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from safeapply.errors import SnapshotError
from safeapply.lock import controller_lock
from safeapply.snapshot.store import Store

SAFEAPPLY = Path(sys.executable).parent / "safeapply"
PLAYBOOK = "- hosts: all\n  gather_facts: false\n  vars_files: [vars.yml]\n  tasks:\n    - ansible.builtin.ping:\n"
GUARD = 300  # a hang guard for the subprocess, not a speed assertion: on main these never returned


def _lint(path: Path, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAFEAPPLY_STATE_DIR": str(state)}
    return subprocess.run([str(SAFEAPPLY), "lint", str(path)], cwd=path.parent, env=env, capture_output=True,
                          text=True, check=False, timeout=GUARD)


def test_a_fifo_beside_the_playbook_is_a_finding_not_a_hang(tmp_path: Path) -> None:
    (tmp_path / "pb.yml").write_text(PLAYBOOK)
    os.mkfifo(tmp_path / "vars.yml")
    proc = _lint(tmp_path / "pb.yml", tmp_path / "state")
    assert proc.returncode == 16, proc.stdout + proc.stderr
    assert "not-a-file" in proc.stdout and "vars.yml" in proc.stdout


def test_a_yaml_bomb_is_refused_before_anything_expands_it(tmp_path: Path) -> None:
    lines = ["- hosts: all", "  gather_facts: false", "  vars:", '    a0: &a0 ["lol","lol","lol","lol","lol","lol"]']
    lines += [f"    a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    lines += ["  tasks:", "    - name: Show", "      ansible.builtin.debug: {var: a9}"]
    (tmp_path / "bomb.yml").write_text("\n".join(lines) + "\n")
    proc = _lint(tmp_path / "bomb.yml", tmp_path / "state")
    assert proc.returncode == 16, proc.stdout + proc.stderr
    assert "expand to more than" in proc.stdout


def test_a_huge_playbook_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yml"
    with open(big, "w") as f:
        f.write("- hosts: all\n  vars:\n    blob: '")
        f.write("x" * (17 << 20))
        f.write("'\n  tasks: []\n")
    proc = _lint(big, tmp_path / "state")
    assert proc.returncode == 16, proc.stdout + proc.stderr
    assert "larger than any playbook" in proc.stdout


def test_a_shared_state_dir_keeps_its_mode_and_what_safeapply_puts_in_it_is_private(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    env = {**os.environ, "SAFEAPPLY_STATE_DIR": str(shared)}
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - name: Ping\n      ansible.builtin.ping:\n")
    for argv in (["history"], ["lint", str(pb)]):
        proc = subprocess.run([str(SAFEAPPLY), *argv], env=env, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
    assert shared.stat().st_mode & 0o7777 == 0o1777
    made = list(shared.iterdir())
    assert made and all(p.stat().st_mode & 0o077 == 0 for p in made), [(p, oct(p.stat().st_mode)) for p in made]


def test_a_new_state_dir_is_private_whatever_is_created_first(tmp_path: Path) -> None:
    state = tmp_path / "new" / "state"
    env = {**os.environ, "SAFEAPPLY_STATE_DIR": str(state)}
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - name: Ping\n      ansible.builtin.ping:\n")
    proc = subprocess.run([str(SAFEAPPLY), "lint", str(pb)], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert state.stat().st_mode & 0o777 == 0o700


def test_hosts_whose_names_differ_only_in_punctuation_have_their_own_locks(tmp_path: Path) -> None:
    with controller_lock("web:1", "run-a", tmp_path), controller_lock("web_1", "run-b", tmp_path), \
            controller_lock("web.1", "run-c", tmp_path):
        assert len(list(tmp_path.iterdir())) == 3


def _manifest(host: str, blob: str) -> bytes:
    head = {"format": 1, "host": host, "roots": ["/etc"],
            "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    entries = [{"p": "/etc", "t": "d"}, {"p": "/etc/motd", "t": "f", "h": blob}]
    return b"".join(json.dumps(x).encode() + b"\n" for x in [head, *entries])


def test_a_prune_between_a_snapshots_blobs_and_its_manifest_fails_that_snapshot(tmp_path: Path) -> None:
    """A snapshot sends its new blobs first and its manifest last; a prune in between removes the blobs nothing
    refers to yet. The manifest must then be refused, never stored pointing at content that is gone."""
    store = Store(tmp_path / "store")
    data = b"hello\n"
    h = hashlib.sha256(data).hexdigest()
    store.put_blobs({h: data})
    store.prune(keep=1)  # another safeapply process
    with pytest.raises(SnapshotError, match="pruned meanwhile"):
        store.save({}, _manifest("web1", h), "web1")
    assert store.ids() == []


def test_the_apply_gate_fails_closed(tmp_path: Path) -> None:
    """ansible-playbook waits at the gate until safeapply says go; a gate that breaks (here: its file is a
    directory) must stop the play, never let it run (Ansible turns a callback's exception into a warning)."""
    marker = tmp_path / "ran"
    pb = tmp_path / "pb.yml"
    pb.write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.copy: "
                  f"{{dest: {marker}, content: x}}\n")
    env = {**os.environ, "ANSIBLE_CALLBACK_PLUGINS": str(Path(__file__).parent.parent / "safeapply"
                                                          / "ansible_callbacks"),
           "SAFEAPPLY_APPLY_GATE": str(tmp_path)}
    proc = subprocess.run([str(SAFEAPPLY.parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(pb)],
                          env=env, capture_output=True, text=True, check=False, timeout=GUARD)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert not marker.exists()


def test_a_root_controller_that_is_its_own_target_keeps_both_trees(tmp_path: Path) -> None:
    """Issue 11 item 5: as root, the controller's state dir and a host's own copies both default to
    /var/lib/safeapply. A controller that manages itself must keep them apart: pruning the controller's store
    (twice: what one prune leaves, the next sees) never deletes the copy the host's dead-man's switch restores from."""
    from safeapply.snapshot.capture import take
    from safeapply.transport.local import LocalTransport

    state = tmp_path / "var-lib-safeapply"  # both sides' base, as on a root controller
    root = tmp_path / "etc"
    root.mkdir()
    (root / "motd").write_text("hello\n")
    store = Store(state / "snapshots")
    with LocalTransport("self") as t:
        sid = take(t, [str(root)], store, target_base=str(state)).id
    on_host = [p for p in state.rglob(f"{sid}.jsonl") if not p.is_relative_to(store.host_dir("self"))]
    assert on_host, "the host keeps its own copy"
    store.prune(keep=0)
    store.prune(keep=0)
    assert store.ids() == []
    assert all(p.exists() for p in on_host)
