"""The speedups of Ansible's part of a run (issue 15 item 2), on a real sandbox over real SSH: SSH pipelining on by
default, `--no-speedups` and the config file restore Ansible's defaults, a host whose sudo needs a tty falls back,
and a run cut short with pipelining on still has its tasks stopped by the rollback (no ansible-tmp path on the host
names them: the run's mark does)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Sandbox

from safeapply.cli import main
from safeapply.errors import SudoError
from safeapply.preflight import check
from safeapply.project_config import load

# How the module ran: the command line of the module's own process (the shell task's parent) and the run's mark.
# Pipelined, that process is a bare `python3` reading the module from stdin; otherwise it names AnsiballZ_*.py.
# As another user through sudo: what a `Defaults requiretty` host refuses without a tty.
PLAYBOOK = r"""- hosts: all
  gather_facts: false
  tasks:
    - name: write a file
      ansible.builtin.copy: {dest: /etc/sp-demo.conf, content: "{{ word }}\n", mode: "0644"}
    - name: how the module ran
      ansible.builtin.shell: >-
        { tr '\0' ' ' < /proc/$PPID/cmdline; echo "run=$SAFEAPPLY_RUN"; } > /tmp/sp-how-{{ word }}
      become: true
      become_user: deploy
      changed_when: false
"""

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def host(sandbox_factory: Callable[[str], Sandbox]) -> Sandbox:
    return sandbox_factory("sp1")


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("SAFEAPPLY_SPEEDUPS", raising=False)
    monkeypatch.delenv("SAFEAPPLY_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no safeapply.toml of the caller's
    yield


def _run(host: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str], word: str,
         *extra: str) -> tuple[int, dict[str, object], str]:
    """Run the playbook; (exit code, the run's JSON, how its module ran on the host)."""
    pb = tmp_path / "pb.yml"
    pb.write_text(PLAYBOOK)
    capsys.readouterr()
    rc = main(["run", str(pb), "-i", str(host.inventory), "--yes", "--json", "--settle", "0", "-e", f"word={word}",
               *extra])
    out = json.loads(capsys.readouterr().out)
    return rc, out, host.sh(f"cat /tmp/sp-how-{word}").strip()


def test_pipelining_is_on_by_default(host: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, how = _run(host, tmp_path, capsys, "a")
    assert rc == 0, out
    assert how == f"/usr/bin/python3 run={out['id']}"  # pipelined, and marked with the run's id
    assert host.sh("cat /etc/sp-demo.conf") == "a\n"


def test_no_speedups_restores_ansible_defaults(host: Sandbox, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, how = _run(host, tmp_path, capsys, "b", "--no-speedups")
    assert rc == 0, out
    assert "/ansible-tmp-" in how and "AnsiballZ_" in how, how  # the module was sent as a file: no pipelining
    assert how.endswith(f" run={out['id']}")  # the mark stays: the rollback depends on it


def test_config_file_turns_the_speedups_off(host: Sandbox, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "safeapply.toml").write_text("speedups = false\n")
    assert load().default_map() == {"run": {"speedups": False}}
    rc, out, how = _run(host, tmp_path, capsys, "c")
    assert rc == 0, out
    assert "AnsiballZ_" in how, how


def test_sudo_that_needs_a_tty_falls_back_to_no_pipelining(host: Sandbox, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`Defaults requiretty`: a root login still works, and Ansible's become to another user needs the tty that
    pipelining does not give: the run goes without pipelining and applies. A non-root login is refused in
    preflight with one line (safeapply's own sudo runs without a tty)."""
    host.sh("echo 'Defaults requiretty' > /etc/sudoers.d/sp-tty && chmod 0440 /etc/sudoers.d/sp-tty")
    try:
        rc, out, how = _run(host, tmp_path, capsys, "d")
        assert rc == 0, out
        assert "AnsiballZ_" in how, how
        assert "requiretty" in str(out.get("notes") or out), out
        with host.transport("deploy") as t, pytest.raises(SudoError, match="requiretty"):
            check(t)
    finally:
        host.sh("rm -f /etc/sudoers.d/sp-tty")


def test_sigterm_mid_task_with_pipelining_stops_the_task(host: Sandbox, tmp_path: Path) -> None:
    """A run cut short while a pipelined task (and an async job) runs: the rollback finds both by the run's mark
    and stops them before it restores /etc."""
    pb = tmp_path / "slow.yml"
    pb.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - name: w\n"
                  "      ansible.builtin.copy: {dest: /etc/sp-sigterm, content: \"x\\n\", mode: \"0644\"}\n"
                  "    - name: detached\n      ansible.builtin.command: sleep 131\n      async: 300\n      poll: 0\n"
                  "      changed_when: false\n"
                  "    - name: wait\n      ansible.builtin.command: sleep 132\n      changed_when: false\n")
    proc = subprocess.Popen([sys.executable, "-m", "safeapply", "run", str(pb), "-i", str(host.inventory), "--yes"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ})
    try:
        while host.sh_rc("pgrep -f 'sleep 13[2]'")[0] != 0:  # the slow task runs on the host
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.2)
        parent = host.sh("p=$(pgrep -f 'sleep 13[2]'); ps -o args= -p $(ps -o ppid= -p $p)").strip()
        assert parent == "/usr/bin/python3", parent  # pipelined: no ansible-tmp path names this task
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=300)[0]
        left = host.sh_rc("pgrep -af 'sleep 13[12]'")
    finally:
        if proc.poll() is None:
            proc.kill()
        host.sh("pkill -f 'sleep 13[12]' || true")
    assert proc.returncode == 143, out
    assert left[0] != 0, f"the interrupted tasks still run on the host: {left[1]}"
    assert host.sh_rc("test -e /etc/sp-sigterm")[0] != 0  # and /etc was restored
