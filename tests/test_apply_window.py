"""The apply window (issue 16): from the start of apply to the end of verification, whatever goes wrong
ends with the hosts rolled back (20/21), and a signal that arrives during a rollback is delivered after it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Sandbox

from safeapply.cli import main

pytestmark = pytest.mark.sandbox

LISTING = ("find /etc -xdev \\( -type f -printf '%p f %m %u %g %s ' -exec sha256sum {} \\; \\) -o "
           "\\( ! -type f -printf '%p %y %m %u %g %l\\n' \\) | sort")


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(scope="module")
def host(sandbox_factory: Callable[[str], Sandbox]) -> Sandbox:
    return sandbox_factory("win1")


def _pb(tmp_path: Path, name: str, tasks: str) -> Path:
    p = tmp_path / name
    p.write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n{tasks}")
    return p


def _last(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["show", "last", "--json"]) == 0
    return dict(json.loads(capsys.readouterr().out))


NEW_HOST_KEYS = """    - name: new host keys
      ansible.builtin.shell: rm -f /etc/ssh/ssh_host_*; ssh-keygen -A
      changed_when: true
    - name: sshd picks them up
      ansible.builtin.systemd: {name: ssh.service, state: restarted}
"""


def test_host_key_changed_by_the_play_is_rolled_back(host: Sandbox, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Verification's new connection meets a changed host key: before, the run ended 12 ("stopped before any
    change") with the new keys left in place; now the host is rolled back over the connection kept open since
    before apply, and its old keys (the ones known_hosts has) are back."""
    before = host.sh(LISTING)
    code = main(["run", str(_pb(tmp_path, "keys.yml", NEW_HOST_KEYS)), "-i", str(host.inventory), "--yes",
                 "--settle", "1"])
    assert code == 20
    assert host.sh(LISTING) == before  # plain OpenSSH, checking the original host key, gets in
    rec = _last(capsys)
    assert rec["status"] == "rolled-back"
    assert rec["rollback"]["win1"]["outcome"] == "restored"  # type: ignore[index]
    assert rec["snapshots"]["win1"]["deadman"]["outcome"] == "disarmed"  # type: ignore[index]
    left = host.sh("systemctl list-timers --all --no-legend | grep -c safeapply-deadman || true")
    assert left.strip() == "0"


def test_sigterm_during_a_verify_failure_rollback(host: Sandbox, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """SIGTERM while the controller rolls back a failed verification: the rollback finishes, then the run
    ends as terminated (143) — the signal is not swallowed into a plain "rolled back" (20)."""
    before = host.sh(LISTING)
    pb = _pb(tmp_path, "chk.yml", "    - name: w\n      ansible.builtin.copy: {dest: /etc/hr-win, content: x}\n")
    (tmp_path / "chk.verify.yml").write_text("checks:\n  - command: test ! -e /etc/hr-win\n")
    proc = subprocess.Popen([sys.executable, "-m", "safeapply", "run", str(pb), "-i", str(host.inventory), "--yes",
                             "--settle", "1"], env={**os.environ}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("== rollback"):
            proc.send_signal(signal.SIGTERM)
            break
    out = "".join(seen) + proc.stdout.read()
    assert proc.wait(timeout=300) == 143, out
    assert host.sh(LISTING) == before
    rec = _last(capsys)
    assert (rec["status"], rec["exit_code"]) == ("terminated", 143)
    assert rec["rollback"]["win1"]["outcome"] == "restored"  # type: ignore[index]
