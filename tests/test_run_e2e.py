"""`safeapply run` end to end on real sandbox hosts over real SSH, one test per exit path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Sandbox

from safeapply.cli import main

pytestmark = pytest.mark.sandbox

LISTING = ("find /etc -xdev \\( -type f -printf '%p f %m %u %g %s %T@ ' -exec sha256sum {} \\; \\) -o "
           "\\( ! -type f -printf '%p %y %m %u %g %l %T@\\n' \\) | sort; getfattr -R -d -m - --absolute-names "
           "/etc 2>/dev/null | sort; getfacl -R -p /etc 2>/dev/null | sort")


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(scope="module")
def host(sandbox_factory: Callable[[str], Sandbox]) -> Sandbox:
    return sandbox_factory("run1")


def _pb(tmp_path: Path, name: str, tasks: str) -> Path:
    p = tmp_path / name
    p.write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n{tasks}")
    return p


def _run(pb: Path, host: Sandbox, *extra: str) -> int:
    return main(["run", str(pb), "-i", str(host.inventory), "--yes", "--settle", "1", *extra])


def _last(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["show", "last", "--json"]) == 0
    return dict(json.loads(capsys.readouterr().out))


BAD = """    - name: modify
      ansible.builtin.copy: {dest: /etc/motd, content: "changed\\n", mode: "0600", owner: nobody}
    - name: add
      ansible.builtin.copy: {dest: /etc/hr-added/new.conf, content: "new\\n", mode: "0640"}
      ignore_errors: false
    - name: delete
      ansible.builtin.file: {path: /etc/issue.net, state: absent}
    - name: chmod
      ansible.builtin.file: {path: /etc/hostname, mode: "0600", owner: nobody}
    - name: fail
      ansible.builtin.fail: {msg: deliberate failure}
"""


def test_good_then_unchanged(host: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pb = _pb(tmp_path, "good.yml", "    - name: write\n      ansible.builtin.copy: "
             "{dest: /etc/hr-good.conf, content: \"ok\\n\", mode: \"0644\"}\n")
    try:
        assert _run(pb, host) == 0
        assert host.sh("cat /etc/hr-good.conf") == "ok\n"
        rec = _last(capsys)
        assert rec["status"] == "applied" and rec["exit_code"] == 0
        assert set(rec["timings"]) >= {"lint", "scan+snapshot", "apply", "verify"}  # type: ignore[arg-type]
        assert _run(pb, host) == 6
    finally:
        host.sh("rm -f /etc/hr-good.conf")


def test_failing_playbook_restores_etc_exactly(host: Sandbox, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    before = host.sh(LISTING)
    assert _run(_pb(tmp_path, "bad.yml", BAD), host) == 20
    assert host.sh(LISTING) == before
    rec = _last(capsys)
    assert rec["rollback"]["run1"]["outcome"] == "restored"  # type: ignore[index]
    assert rec["apply"]["failed_hosts"] == ["run1"]  # type: ignore[index]


def test_crash_looping_unit_is_rolled_back(host: Sandbox, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    tasks = """    - name: unit
      ansible.builtin.copy:
        dest: /etc/systemd/system/hr-crash.service
        content: "[Service]\\nExecStart=/bin/sh -c 'sleep 0.3; exit 1'\\nRestart=always\\nRestartSec=0.2\\n"
    - name: start
      ansible.builtin.systemd: {name: hr-crash.service, state: started, daemon_reload: true}
"""
    assert _run(_pb(tmp_path, "crash.yml", tasks), host) == 20
    assert host.sh_rc("systemctl is-active hr-crash.service")[1].strip() in ("inactive", "unknown")
    assert host.sh_rc("test -e /etc/systemd/system/hr-crash.service")[0] != 0
    rec = _last(capsys)
    kinds = {f["kind"] for f in rec["verify"]["run1"]["findings"]}  # type: ignore[index]
    assert kinds & {"restart-loop", "unit-failed", "unit-not-active"}


def test_user_check_failure_rolls_back(host: Sandbox, tmp_path: Path) -> None:
    pb = _pb(tmp_path, "chk.yml", "    - name: w\n      ansible.builtin.copy: {dest: /etc/hr-chk, content: x}\n")
    (tmp_path / "chk.verify.yml").write_text("checks:\n  - command: test ! -e /etc/hr-chk\n  - tcp: 22\n")
    assert _run(pb, host) == 20
    assert host.sh_rc("test -e /etc/hr-chk")[0] != 0


def test_lint_blocks_before_change(host: Sandbox, tmp_path: Path) -> None:
    pb = _pb(tmp_path, "lint.yml", "    - name: x\n      ansible.builtin.copy: {dest: /etc/hr-lint, "
             "content: x}\n    - name: y\n      no_such_module_zz: {}\n")
    assert _run(pb, host) == 16
    assert host.sh_rc("test -e /etc/hr-lint")[0] != 0
    _no_switch_left(host)


def test_strict_lint_stops_when_ansible_lint_could_not_run(host: Sandbox, tmp_path: Path) -> None:
    """Issue 14: ansible-lint rejecting the project's config is a warning (the run goes on), and with
    --strict-lint it stops the run before any change (16)."""
    (tmp_path / ".ansible-lint").write_text("profile: production\nnot_a_real_key: 1\n")
    pb = _pb(tmp_path, "sl.yml", "    - name: w\n      ansible.builtin.copy: {dest: /etc/hr-sl, content: x}\n")
    try:
        assert _run(pb, host, "--strict-lint") == 16
        assert host.sh_rc("test -e /etc/hr-sl")[0] != 0
        _no_switch_left(host)
        assert _run(pb, host) == 0
    finally:
        host.sh("rm -f /etc/hr-sl")


def _no_switch_left(host: Sandbox) -> None:
    """A run that stopped before apply released the dead-man's switch it armed after the snapshot."""
    left = host.sh("find /usr/local/lib/systemd -name 'safeapply-deadman-*' | wc -l; "
                   "systemctl list-timers --all --no-legend | grep -c safeapply-deadman || true")
    assert left.split() == ["0", "0"], left


def test_plan_blocks_port_collision(host: Sandbox, tmp_path: Path) -> None:
    host.sh("systemd-run --unit hr-seed -p Restart=always python3 -m http.server 9090 --bind 0.0.0.0 "
            "&& for i in $(seq 50); do ss -ltn | grep -q :9090 && break; sleep 0.1; done")
    unit = ("[Service]\\nExecStart=/usr/bin/python3 -m http.server 9090\\n")
    pb = _pb(tmp_path, "seed.yml", f"""    - name: unit
      ansible.builtin.copy: {{dest: /etc/systemd/system/hr-agent.service, content: "{unit}"}}
    - name: start
      ansible.builtin.systemd: {{name: hr-agent.service, state: started, daemon_reload: true}}
""")
    try:
        assert _run(pb, host) == 17
        assert host.sh_rc("test -e /etc/systemd/system/hr-agent.service")[0] != 0
        _no_switch_left(host)
    finally:
        host.sh("systemctl stop hr-seed; systemctl reset-failed hr-seed 2>/dev/null; true")


def test_check_mode_changes_nothing(host: Sandbox, tmp_path: Path) -> None:
    pb = _pb(tmp_path, "ck.yml", "    - name: w\n      ansible.builtin.copy: {dest: /etc/hr-ck, content: x}\n")
    assert _run(pb, host, "--check") == 0
    assert host.sh_rc("test -e /etc/hr-ck")[0] != 0


def test_unreachable_host(tmp_path: Path) -> None:
    inv = tmp_path / "inv.ini"
    inv.write_text("dead ansible_host=127.0.0.1 ansible_port=1 ansible_user=root\n")
    pb = _pb(tmp_path, "u.yml", "    - ansible.builtin.ping:\n")
    assert main(["run", str(pb), "-i", str(inv), "--yes"]) == 10


def test_locked_host(host: Sandbox, tmp_path: Path) -> None:
    host.sh("mkdir -p /run/safeapply/lock && echo '{\"run_id\": \"other\", \"controller\": \"elsewhere\", "
            "\"pid\": 1}' > /run/safeapply/lock/owner.json")
    try:
        assert _run(_pb(tmp_path, "l.yml", "    - ansible.builtin.ping:\n"), host) == 4
    finally:
        host.sh("rm -rf /run/safeapply/lock")


def test_sigterm_mid_apply_rolls_back(host: Sandbox, tmp_path: Path) -> None:
    before = host.sh(LISTING)
    pb = _pb(tmp_path, "slow.yml", "    - name: w\n      ansible.builtin.copy: {dest: /etc/motd, "
             "content: \"sig\\n\"}\n    - name: wait\n      ansible.builtin.command: sleep 120\n")
    env = {**os.environ}
    proc = subprocess.Popen([sys.executable, "-m", "safeapply", "run", str(pb), "-i", str(host.inventory), "--yes"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "changed" in line and " w" in line:
            break
    while host.sh_rc("pgrep -f 'sleep 12[0]'")[0] != 0:  # wait for the task to be running on the host
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out = proc.stdout.read()
    assert proc.wait(timeout=300) == 143, out
    assert host.sh(LISTING) == before
    host.sh("pkill -f 'sleep 12[0]' || true")


def test_history_show_and_rollback_command(host: Sandbox, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    pb = _pb(tmp_path, "h.yml", "    - name: w\n      ansible.builtin.copy: {dest: /etc/hr-hist, content: x}\n")
    assert _run(pb, host) == 0
    rec = _last(capsys)
    assert main(["history", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"][0]["id"] == rec["id"]
    assert main(["rollback", str(rec["id"])]) == 2  # no TTY, no --yes: refused
    assert host.sh_rc("test -e /etc/hr-hist")[0] == 0
    assert main(["rollback", str(rec["id"]), "--yes"]) == 0
    assert host.sh_rc("test -e /etc/hr-hist")[0] != 0


# ---- the apply window (issue 16): whatever goes wrong after apply ends rolled back -------------------

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
    assert rec["rollback"]["run1"]["outcome"] == "restored"  # type: ignore[index]
    assert rec["snapshots"]["run1"]["deadman"]["outcome"] == "disarmed"  # type: ignore[index]
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
    assert rec["rollback"]["run1"]["outcome"] == "restored"  # type: ignore[index]


def test_verification_is_as_large_as_the_change(host: Sandbox, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 15: the settle wait for the way in applies only when a way-in task changed; an idempotent rerun
    gets the proof of reach and one scan (no settle line, exit 6)."""
    pb = _pb(tmp_path, "way.yml", "    - name: sshd drop-in\n      ansible.builtin.copy: "
             "{dest: /etc/ssh/sshd_config.d/hr-way.conf, content: \"# nothing\\n\", mode: \"0644\", "
             "validate: \"/usr/sbin/sshd -t -f %s\"}\n")
    try:
        capsys.readouterr()
        assert _run(pb, host) == 0
        assert "SSH checked 1s after apply (sshd drop-in: writes /etc/ssh" in capsys.readouterr().out
        assert _run(pb, host) == 6
        assert "SSH checked" not in capsys.readouterr().out
    finally:
        host.sh("rm -f /etc/ssh/sshd_config.d/hr-way.conf")


def test_settle_only_when_an_account_task_can_touch_the_login(host: Sandbox, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 15: a changed `user:` task creating an app user is not the way in (no settle); one that changes the
    login user's (root's) shell is."""
    app = _pb(tmp_path, "app.yml", "    - name: app user\n      ansible.builtin.user: "
              "{name: hrapp, system: true, shell: /usr/sbin/nologin, create_home: false}\n")
    shell = host.sh("getent passwd root").strip().rsplit(":", 1)[-1]
    other = "/bin/sh" if shell != "/bin/sh" else "/bin/bash"
    login = _pb(tmp_path, "login.yml", f"    - name: login shell\n      ansible.builtin.user: "
                f"{{name: root, shell: {other}}}\n")
    try:
        assert _run(app, host) == 0
        rec = _last(capsys)
        assert rec["verify"]["run1"]["way_in"] == []  # type: ignore[index]
        assert rec["apply"]["hosts"]["run1"]["changed"] == 1  # type: ignore[index]
        assert _run(login, host) == 0
        rec = _last(capsys)
        assert rec["verify"]["run1"]["way_in"] == ["login shell: user root"]  # type: ignore[index]
    finally:
        host.sh(f"userdel hrapp 2>/dev/null; chsh -s {shell} root")
