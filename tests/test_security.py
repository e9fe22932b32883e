"""Reproducers of the safety audit (issue 11), each named after the promise it protects."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Sandbox

from safeapply.cli import main
from safeapply.errors import UsageError
from safeapply.records import RunStore
from safeapply.snapshot.roots import canonical_roots

pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).parent.parent
LISTING = ("find /etc -xdev \\( -type f -printf '%p f %m %u %g %s %T@ ' -exec sha256sum {} \\; \\) -o "
           "\\( ! -type f -printf '%p %y %m %u %g %l %T@\\n' \\) | sort")


@pytest.fixture(scope="module")
def host(sandbox_factory: Callable[[str], Sandbox]) -> Sandbox:
    return sandbox_factory("sec1")


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))

LOCKOUT_ONE_FAIL_OTHER = """- name: one host shuts us out, the other fails
  hosts: all
  gather_facts: false
  tasks:
    - name: sshd moves to 2222 on the first host (lint does not read sed)
      ansible.builtin.shell: "sed -i 's/^#\\\\?Port .*/Port 2222/' /etc/ssh/sshd_config && sshd -t"
      changed_when: true
      when: inventory_hostname == first
      notify: Restart ssh
    - name: the second host gets a file
      ansible.builtin.copy: {dest: /etc/hr-sec-other, content: "x\\n", mode: "0644"}
      when: inventory_hostname != first
    - name: and then fails
      ansible.builtin.fail: {msg: deliberate}
      when: inventory_hostname != first
  handlers:
    - name: Restart ssh
      ansible.builtin.service: {name: ssh, state: restarted}
"""


def test_every_failed_host_is_rolled_back_when_another_restored_itself(
        host: Sandbox, sandbox_factory: Callable[[str], Sandbox], tmp_path: Path) -> None:
    """Issue 11 item 3: a host restored by its dead-man's switch used to end the run before the controller
    rolled back the other failed hosts (exit 20, yet the second host kept the play's changes)."""
    locked, other = sandbox_factory("sec-lock"), host
    pb = tmp_path / "pb.yml"
    pb.write_text(LOCKOUT_ONE_FAIL_OTHER)
    argv = [str(Path(sys.executable).parent / "safeapply"), "run", str(pb), "-i", str(locked.inventory),
            "-i", str(other.inventory), "--yes", "--settle", "1", "--deadman-deadline", "20",
            "-e", f"first={locked.name}"]
    env = {**os.environ, "SAFEAPPLY_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 20, out
    assert other.sh_rc("test -e /etc/hr-sec-other")[0] != 0, out  # rolled back by the controller
    assert locked.sh("echo back").strip() == "back"  # port 22 again: restored by its switch
    rec = RunStore(tmp_path / "state" / "runs.sqlite").get("last")
    assert rec.sections["snapshots"][locked.name]["deadman"]["outcome"] == "restored"
    assert rec.sections["rollback"][other.name]["outcome"] == "restored"


@pytest.mark.parametrize(("given", "canonical"), [
    (["/etc", "/etc/ssh"], ("/etc",)),
    (["/etc", "/etc"], ("/etc",)),
    (["//etc/", "/opt/app/./"], ("/etc", "/opt/app")),
    (["/etc/ssh", "/etcetera"], ("/etc/ssh", "/etcetera")),
])
def test_roots_are_canonical_before_a_snapshot(given: list[str], canonical: tuple[str, ...]) -> None:
    assert canonical_roots(given) == canonical


@pytest.mark.parametrize("bad", ["etc", "/etc/../tmp"])
def test_a_bad_root_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError):
        canonical_roots([bad])


def test_overlapping_roots_still_roll_back(host: Sandbox, tmp_path: Path) -> None:
    """Issue 11 item 4: `--root /etc --root /etc/ssh` (or `//etc`) made a snapshot that restore refused, so
    the rollback failed (21) and the host kept the play's changes."""
    before = host.sh(LISTING)
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n"
                  "    - ansible.builtin.copy: {dest: /etc/ssh/hr-sec, content: x, mode: '0644'}\n"
                  "    - ansible.builtin.fail: {msg: deliberate}\n")
    code = main(["run", str(pb), "-i", str(host.inventory), "--yes", "--settle", "0", "--root", "/etc",
                 "--root", "/etc/ssh", "--root", "//etc/"])
    assert code == 20
    assert host.sh(LISTING) == before


def test_rollback_leaves_a_unit_that_another_timer_started(host: Sandbox, tmp_path: Path) -> None:
    """Issue 11 item 13: a unit that a timer (there before the run) started during the run — apt-daily-upgrade
    mid-dpkg, certbot — is not the run's: the rollback used to stop it (and count it as a difference)."""
    host.sh("systemd-run --unit hr-bystander --on-active=3 /bin/sleep 600")
    before = host.sh(LISTING)
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n"
                  "    - ansible.builtin.copy: {dest: /etc/hr-sec-by, content: x, mode: '0644'}\n"
                  "    - ansible.builtin.wait_for: {timeout: 5}\n"
                  "    - ansible.builtin.fail: {msg: deliberate}\n")
    try:
        code = main(["run", str(pb), "-i", str(host.inventory), "--yes", "--settle", "0"])
        rec = RunStore(tmp_path / "state" / "runs.sqlite").get("last")
        assert code == 20, rec.sections.get("rollback")
        assert host.sh(LISTING) == before
        assert host.sh_rc("systemctl is-active hr-bystander.service")[1].strip() == "active"
    finally:
        host.sh("systemctl stop hr-bystander.timer hr-bystander.service 2>/dev/null; true")


FILTER_PLUGIN = """\
import os
import pathlib


def _seen(value):
    with open(os.environ["SEC_MARKER"], "a") as f:
        f.write(f"{os.getpid()}\\n")
    return value


class FilterModule:
    def filters(self):
        return {"seen": _seen}
"""


def test_no_playbook_code_runs_in_safeapply_before_lint_passed(host: Sandbox, tmp_path: Path) -> None:
    """Issue 11 item 1: `run` resolved the playbook (templating task arguments, so a project's own filter
    plugins ran inside safeapply's process) beside lint instead of after it had passed. A playbook that lint
    blocks must stop the run with nothing of it evaluated in safeapply's process (ansible-lint, a separate
    process, renders templates itself, as it does when run by hand)."""
    (tmp_path / "filter_plugins").mkdir()
    (tmp_path / "filter_plugins" / "seen.py").write_text(FILTER_PLUGIN)
    pb = tmp_path / "pb.yml"
    pb.write_text("- name: P\n  hosts: all\n  gather_facts: false\n  tasks:\n    - name: T\n"
                  "      ansible.builtin.copy:\n        dest: \"{{ '/etc/sec-filter' | seen }}\"\n"
                  "        content: x\n        mode: '0644'\n        destination: typo\n")  # unknown-option: blocks
    marker = tmp_path / "marker"
    argv = [str(Path(sys.executable).parent / "safeapply"), "run", str(pb), "-i", str(host.inventory), "--yes"]
    env = {**os.environ, "SAFEAPPLY_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(ROOT),
           "SEC_MARKER": str(marker)}
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 16, out
    ran_in = set(marker.read_text().split()) if marker.exists() else set()
    assert str(proc.pid) not in ran_in, "the playbook's filter plugin ran inside safeapply before lint passed"
    rec = RunStore(tmp_path / "state" / "runs.sqlite").get("last")
    switch = rec.sections["snapshots"][host.name].get("deadman", {"outcome": "never armed"})
    assert switch["outcome"] in ("never armed", "released"), rec.sections
    assert host.sh_rc("test -e /etc/sec-filter")[0] != 0


def test_a_rollback_waits_for_a_service_it_started_again_to_listen(host: Sandbox, tmp_path: Path) -> None:
    """A service that binds its port a moment after it starts (a JVM, a migration first) was reported as a
    difference (exit 21) by the rollback that had just started it again: the check rescanned once, at once."""
    host.sh("printf '[Service]\\nExecStart=/bin/sh -c \"sleep 2; exec python3 -m http.server 9093\"\\n' "
            "> /etc/systemd/system/hr-slow.service && systemctl daemon-reload && systemctl start hr-slow && "
            "for i in $(seq 50); do ss -ltn | grep -q :9093 && break; sleep 0.2; done")
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n"
                  "    - ansible.builtin.systemd: {name: hr-slow.service, state: stopped}\n"
                  "    - ansible.builtin.fail: {msg: deliberate}\n")
    try:
        code = main(["run", str(pb), "-i", str(host.inventory), "--yes", "--settle", "0"])
        rec = RunStore(tmp_path / "state" / "runs.sqlite").get("last")
        assert code == 20, rec.sections.get("rollback")
        assert host.sh("ss -ltn | grep -c :9093").strip() == "1"
    finally:
        host.sh("systemctl stop hr-slow; rm -f /etc/systemd/system/hr-slow.service; systemctl daemon-reload")
