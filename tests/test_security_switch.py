"""Reproducers of the safety audit (issue 11 items 9 and 10) around the dead-man's switch and restores, on one
real sandbox: the switch's own restore never takes the way in away; it stays armed through the controller's
rollback; `safeapply restore` holds the host lock with the switch armed; an interrupted restore is reported by
the next run and completed by the next restore."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Sandbox

from safeapply import deadman, remote
from safeapply.deadman.keepalive import Keepalive
from safeapply.errors import UnreachableError
from safeapply.lock import host_lock
from safeapply.records import RunStore
from safeapply.snapshot import Store, take
from safeapply.transport.base import Transport

pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).parent.parent
SAFEAPPLY = str(Path(sys.executable).parent / "safeapply")
JOURNAL = "/var/lib/safeapply/restores/journal.json"
FAILS_WITH_A_UNIT = """- name: starts a unit, then fails
  hosts: all
  become: true
  tasks:
    - name: A transient unit whose stop writes down which dead-man's switches are armed at that moment
      ansible.builtin.command:
        argv: [systemd-run, --unit=sa-probe, "--property=ExecStop=/bin/sh -c 'systemctl list-timers --all
               --no-legend > /var/tmp/sa-probe'", /bin/sleep, infinity]
      changed_when: true
    - name: Fail
      ansible.builtin.fail: {msg: deliberate}
"""


LOCKOUT_AND_RESTART = """- name: restarts a service, then moves sshd away
  hosts: all
  become: true
  tasks:
    - name: Restart the writer
      ansible.builtin.systemd: {name: sa-writer.service, state: restarted}
    - name: Listen on 2222 only (lint does not read sed)
      ansible.builtin.shell: "sed -i 's/^#\\\\?Port .*/Port 2222/' /etc/ssh/sshd_config && sshd -t"
      changed_when: true
      notify: Restart ssh
  handlers:
    - name: Restart ssh
      ansible.builtin.service: {name: ssh, state: restarted}
"""


@pytest.fixture(scope="module")
def host(sandbox_factory: Callable[[str], Sandbox]) -> Sandbox:
    return sandbox_factory("ssw")


def _cli(args: list[str], state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAFEAPPLY_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    return subprocess.run([SAFEAPPLY, *args], env=env, capture_output=True, text=True, check=False, timeout=600)


def test_the_switch_keeps_sshd_running_when_its_restore_failed(host: Sandbox) -> None:
    """The restore step fails (the snapshot is not on the host) while sshd's config is broken: the fire must
    not restart sshd into a config it rejects (that would end every way in). It also stops what the run's
    Ansible left running on the host before restoring."""
    with host.transport() as t:
        deadman.arm(t, "fire-bad", "20000101T000000Z-ssw-000000000000", 600)
    task = "/root/.ansible/tmp/ansible-tmp-9999999999.5-1-1/AnsiballZ_command.py"
    # a module process of the run carries its mark (safeapply_run callback); the ansible-tmp path alone is not enough
    host.sh(f"(SAFEAPPLY_RUN=fire-bad exec -a {task} sleep 600) >/dev/null 2>&1 </dev/null & "
            "echo $! > /var/tmp/task.pid")
    host.sh("cp /etc/ssh/sshd_config /var/tmp/sshd_config.good && echo 'NoSuchOption yes' >> /etc/ssh/sshd_config")
    try:
        with host.transport() as t:
            fired = json.loads(remote.call(t, "deadman.fire", ["fire-bad"], timeout=600))
        steps = {s["step"]: s for s in fired["steps"]}
        assert fired["ok"] is False and steps["restore"]["rc"] != 0, fired
        assert "skipped" in steps["sshd"] and "skipped" in steps["networking"], fired
        assert host.sh("echo in").strip() == "in"  # a NEW connection: sshd still runs
        assert host.sh_rc("kill -0 $(cat /var/tmp/task.pid)")[0] != 0  # the run's task was stopped
        assert steps["stop-tasks"]["stopped"] >= 1
    finally:
        host.sh_rc("cp /var/tmp/sshd_config.good /etc/ssh/sshd_config; kill $(cat /var/tmp/task.pid)")


def test_a_failed_host_keeps_its_switch_armed_through_the_rollback(host: Sandbox, tmp_path: Path) -> None:
    """The controller's rollback of a failed host runs with the switch still armed (were the rollback to cut
    SSH, the host would finish it itself); it is disarmed once the rollback has put the files back."""
    pb = tmp_path / "fails.yml"
    pb.write_text(FAILS_WITH_A_UNIT)
    proc = _cli(["run", str(pb), "-i", str(host.inventory), "--yes", "--deadman-deadline", "120"], tmp_path)
    assert proc.returncode == 20, proc.stdout + proc.stderr
    assert "safeapply-deadman-" in host.sh("cat /var/tmp/sa-probe")  # armed while rollback stopped the unit
    rec = RunStore(tmp_path / "runs.sqlite").get("last")
    dm = rec.sections["snapshots"][host.name]["deadman"]
    assert dm["outcome"] == "disarmed" and "after the controller's rollback" in dm["message"], dm
    assert "safeapply-deadman" not in host.sh("systemctl list-timers --all --no-pager")
    host.sh("rm -f /var/tmp/sa-probe")


def test_restore_holds_the_host_lock_and_arms_the_switch(host: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with host.transport() as t:
        sid = take(t, store=Store(state / "snapshots")).id
        with host_lock(t, "someone-elses-run", lock_dir=tmp_path / "other-locks"):
            proc = _cli(["restore", host.name, sid, "-i", str(host.inventory), "--yes"], state)
            assert proc.returncode == 4, proc.stdout + proc.stderr  # LockedError: the run's lock is held
            assert "someone-elses-run" in proc.stderr
    proc = _cli(["restore", host.name, sid, "-i", str(host.inventory), "--yes", "--json"], state)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    switch = json.loads(proc.stdout)["switch"]
    assert switch["armed"]["run_id"].startswith("restore-") and switch["notes"] == [
        "disarmed once the host was verified"], switch
    assert "safeapply-deadman" not in host.sh("systemctl list-timers --all --no-pager")


def test_an_interrupted_restore_is_reported_then_completed(host: Sandbox, tmp_path: Path) -> None:
    """A restore cut off half-way (its controller died) leaves its journal on the host: the next snapshot (the
    first thing a run does) refuses, naming the command that finishes it; that restore completes it."""
    state = tmp_path / "state"
    with host.transport() as t:
        sid = take(t, store=Store(state / "snapshots")).id
    host.sh("echo half-restored > /etc/sa-half && mkdir -p /var/lib/safeapply/restores && "
            f"echo '{{\"snapshot\": \"{sid}\", \"started\": \"2026-01-01T00:00:00+00:00\", \"pid\": 1}}' > {JOURNAL}")
    proc = _cli(["snapshot", host.name, "-i", str(host.inventory)], state)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"safeapply restore {host.name} {sid}" in out, out
    proc = _cli(["restore", host.name, sid, "-i", str(host.inventory), "--yes"], state)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "interrupted restore" in proc.stdout and "completed it" in proc.stdout, proc.stdout
    assert host.sh_rc(f"test -e {JOURNAL}")[0] != 0 and host.sh_rc("test -e /etc/sa-half")[0] != 0
    assert _cli(["snapshot", host.name, "-i", str(host.inventory)], state).returncode == 0


class _DropsOnce(Transport):
    """The host's real SSH connection, whose first command after `armed` fails as a dropped channel would."""

    def __init__(self, inner: Transport) -> None:
        self.inner, self.name, self.user = inner, inner.name, inner.user
        self.calls, self.armed = 0, False

    def _exec(self, argv, stdin, stdout, timeout):  # type: ignore[no-untyped-def]
        if self.armed:
            self.calls += 1
            if self.calls == 1:
                raise UnreachableError(f"{self.name}: channel closed")
        return self.inner._exec(argv, stdin, stdout, timeout)


def test_the_keepalive_retries_a_failed_extend(host: Sandbox, tmp_path: Path) -> None:
    """One failed push (a dropped channel) must not end the keepalive: the switch would then fire in the
    middle of a healthy apply, one deadline after the last push that got through."""
    with host.transport() as inner:
        t = _DropsOnce(inner)
        armed = deadman.arm(t, "keep-retry", take(t, store=Store(tmp_path / "store")).id, 12)
        t.armed = True
        keepalive = Keepalive(t, armed)
        give_up = time.monotonic() + 60
        while t.calls < 3 and time.monotonic() < give_up:  # the failed push, its retry, the next push
            time.sleep(0.5)
        last = keepalive.stop()
        assert t.calls >= 3, t.calls
        assert keepalive.failures == [f"{host.name}: channel closed"]
        st = deadman.status(inner, "keep-retry")
        assert st["armed"] and st["fired"] is None, st
        assert deadman.disarm(inner, last) is None


def test_a_self_restore_is_compared_with_the_snapshot(host: Sandbox, tmp_path: Path) -> None:
    """A host that restored itself is reported restored only if /etc matches the pre-run snapshot: here a
    service the run restarted (and the switch restarts again) rewrites a file under /etc on start, so /etc
    differs after the self-restore; the pipeline must compare the listing, not only services and ports."""
    unit = b"[Service]\nExecStart=/bin/sh -c 'date +%%s%%N > /etc/sa-writer-stamp; exec sleep infinity'\n"
    host.sh("cat > /etc/systemd/system/sa-writer.service && systemctl daemon-reload && systemctl start sa-writer",
            stdin=unit)
    try:
        pb = tmp_path / "lockout.yml"
        pb.write_text(LOCKOUT_AND_RESTART)
        proc = _cli(["run", str(pb), "-i", str(host.inventory), "--yes", "--deadman-deadline", "20"], tmp_path)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 21, out
        dm = RunStore(tmp_path / "runs.sqlite").get("last").sections["snapshots"][host.name]["deadman"]
        assert dm["outcome"] == "rollback-failed", dm
        assert any(d.startswith("/etc/sa-writer-stamp") for d in dm["differences"]), dm
        assert host.sh("echo back").strip() == "back"  # the switch did restore the way in
    finally:
        host.sh_rc("systemctl stop sa-writer; rm -f /etc/systemd/system/sa-writer.service /etc/sa-writer-stamp; "
                   "systemctl daemon-reload")


WAITS_THEN_WRITES = """- name: waits (the switch fires meanwhile), then writes under /etc
  hosts: all
  become: true
  tasks:
    - name: Wait; the switch's fire stops this, and the play goes on
      ansible.builtin.shell: "touch /run/sa-waiting && exec sleep 300"
      changed_when: false
      failed_when: false
      ignore_unreachable: true  # the fire cuts this task's connection: the play goes on all the same
    - name: Write a marker under /etc (must never happen once the switch fired)
      ansible.builtin.copy: {dest: /etc/sa-after-fire, content: "late\\n", mode: "0644"}
"""


def test_a_fired_switch_stops_the_runs_later_tasks(host: Sandbox, tmp_path: Path) -> None:
    """Issue 11 item 9: a host's switch fires in the middle of apply (here by its own service, as its timer
    starts it, while a task runs); the fire stops that task, and Ansible, which goes on with the play, must
    not change the restored host: its later task on that host never starts (the run's fence), so the marker
    never appears and /etc equals the snapshot."""
    pb = tmp_path / "late.yml"
    pb.write_text(WAITS_THEN_WRITES)
    env = {**os.environ, "SAFEAPPLY_STATE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([SAFEAPPLY, "run", str(pb), "-i", str(host.inventory), "--yes", "--deadman-deadline",
                             "300"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(600):  # until the first task runs (a hang guard, not a timing assertion)
            if host.sh_rc("test -e /run/sa-waiting")[0] == 0:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the first task never started")
        host.sh("cd /usr/local/lib/systemd/system && for s in safeapply-deadman-*.service; do "
                "systemctl start --wait \"$s\"; done")  # the switch fires, as its timer would start it
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    try:
        assert host.sh_rc("test -e /etc/sa-after-fire")[0] != 0, out
        rec = RunStore(tmp_path / "runs.sqlite").get("last")
        sid = rec.sections["snapshots"][host.name]["id"]
        diff = _cli(["diff", host.name, sid, "-i", str(host.inventory), "--json"], tmp_path)
        assert diff.returncode == 0 and json.loads(diff.stdout)["changes"] == [], diff.stdout + diff.stderr
    finally:
        host.sh("rm -f /etc/sa-after-fire /run/sa-waiting")
