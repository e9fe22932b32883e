"""The dead-man's switch at the library level, on real sandbox hosts over real SSH, with real ansible-playbook:
a host that shut the controller out restores itself; a disarmed switch never fires; a reboot before the
deadline keeps the protection. Deadlines are short (20 s) so the suite stays quick."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from safeapply import deadman
from safeapply.deadman.confirm import listing_differences
from safeapply.errors import UsageError
from safeapply.inventory import resolve_hosts
from safeapply.scan import scan_host
from safeapply.snapshot import Store, listing, take
from safeapply.target import deadman as target

LOCKOUT = Path(__file__).parent.parent / "playbooks" / "lockout"
ANSIBLE = Path(sys.executable).parent / "ansible-playbook"
DEADLINE = 20.0


def _host(sb):
    return resolve_hosts([str(sb.inventory)], sb.name)[0]


def _prepare(sb, tmp_path: Path, run_id: str, units: tuple[str, ...] = ("ssh.service",)):
    """Snapshot, pre-run listing and scan, then arm: what the pipeline does before apply."""
    with sb.transport() as t:
        info = take(t, store=Store(tmp_path / "store"))
        before, scan = listing(t), scan_host(t)
        armed = deadman.arm(t, run_id, info.id, DEADLINE, units)
    return armed, before, scan


def _playbook(sb, name: str) -> None:
    proc = subprocess.run([str(ANSIBLE), "-i", str(sb.inventory), str(LOCKOUT / name)],
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _locked_out(sb) -> bool:
    return sb.sh_rc("true")[0] != 0


def _assert_restored(sb, out: deadman.Outcome, armed: deadman.Armed) -> None:
    assert out.status == "restored", out.to_dict()
    assert out.exit_code == 20
    assert out.differences == []
    assert out.fired is not None and out.fired["ok"] and out.fired["run_id"] == armed.run_id
    assert sb.sh("echo back").strip() == "back"  # plain OpenSSH as root, port 22: the way in is open again
    assert sb.sh(f"ls /usr/local/lib/systemd/system/ | grep -c {armed.run_id} || true").strip() == "0"
    with sb.transport() as t:
        assert deadman.fired_record(t, armed.run_id) == out.fired


# ---- pure parts ------------------------------------------------------------------------------------------

def test_timer_is_persistent_absolute_utc() -> None:
    text = target.timer_text("r1", "2030-01-02T03:04:05+00:00")
    assert "OnCalendar=2030-01-02 03:04:05 UTC" in text
    assert "Persistent=true" in text and "AccuracySec=1s" in text and "WantedBy=timers.target" in text
    assert target.calendar("2030-01-02T05:04:05+02:00") == "2030-01-02 03:04:05 UTC"
    assert target.paths("r1")["timer"].startswith("/usr/local/lib/systemd/system/")  # never under /etc


def test_bad_run_id_rejected() -> None:
    with pytest.raises(target.Fail):
        target.unit_name("../../etc/x")


def test_listing_differences() -> None:
    before = {"/etc": {"t": "d", "m": 0o755}, "/etc/a": {"t": "f", "h": "1"}, "/etc/b": {"t": "f", "h": "2"}}
    after = {"/etc": {"t": "d", "m": 0o755}, "/etc/a": {"t": "f", "h": "9"}, "/etc/c": {"t": "f", "h": "3"}}
    assert listing_differences(before, before) == []
    assert listing_differences(before, after) == ["/etc/b: missing after restore",
                                                  "/etc/c: not there before the run", "/etc/a: h differ"]


def test_too_short_deadline(host_a) -> None:
    with host_a.transport() as t, pytest.raises(UsageError):
        deadman.arm(t, "short", None, 2)


# ---- on sandbox hosts ------------------------------------------------------------------------------------

def test_sshd_moved_host_restores_itself(sandbox_factory, tmp_path: Path) -> None:
    sb = sandbox_factory("dm-port")
    armed, before, scan = _prepare(sb, tmp_path, "lib-port")
    _playbook(sb, "sshd-port.yml")
    assert _locked_out(sb)
    out = deadman.confirm_or_wait(_host(sb), armed, before_listing=before, before_scan=scan, poll_s=1)
    _assert_restored(sb, out, armed)
    assert "Port 2222" not in sb.sh("cat /etc/ssh/sshd_config")
    assert any(s["step"] == "sshd" and s["rc"] == 0 for s in out.fired["steps"])


def test_allowusers_host_restores_itself(sandbox_factory, tmp_path: Path) -> None:
    sb = sandbox_factory("dm-allow")
    armed, before, scan = _prepare(sb, tmp_path, "lib-allow")
    _playbook(sb, "sshd-allowusers.yml")
    assert _locked_out(sb)
    out = deadman.confirm_or_wait(_host(sb), armed, before_listing=before, before_scan=scan, poll_s=1)
    _assert_restored(sb, out, armed)


def test_firewall_drop_ssh_host_restores_itself(sandbox_factory, tmp_path: Path) -> None:
    sb = sandbox_factory("dm-nft")
    rc, err = sb.sh_rc("nft list ruleset")
    assert rc == 0, f"nft must work inside the sandbox (CAP_NET_ADMIN in supervise.sh): {err.strip()}"
    armed, before, scan = _prepare(sb, tmp_path, "lib-nft")
    assert armed.firewall.get("nft") == "saved"
    _playbook(sb, "nft-drop-ssh.yml")
    while not _locked_out(sb):  # the rule is loaded two seconds after the play
        time.sleep(0.5)
    out = deadman.confirm_or_wait(_host(sb), armed, before_listing=before, before_scan=scan, poll_s=1)
    _assert_restored(sb, out, armed)
    assert "dport 22" not in sb.sh("nft list ruleset")


def test_disarmed_switch_never_fires(sandbox_factory, tmp_path: Path) -> None:
    sb = sandbox_factory("dm-good")
    armed, _before, _scan = _prepare(sb, tmp_path, "lib-good")
    sb.sh("echo kept > /etc/safeapply-good-marker")
    assert "safeapply-deadman-lib-good.timer" in sb.sh("systemctl list-timers --all --no-pager")
    out = deadman.confirm_or_wait(_host(sb), armed)
    assert out.status == "disarmed" and out.exit_code is None
    assert "safeapply-deadman" not in sb.sh("systemctl list-timers --all --no-pager")
    assert sb.sh("ls /usr/local/lib/systemd/system/timers.target.wants/ /var/lib/safeapply/deadman/").split() \
        == ["/usr/local/lib/systemd/system/timers.target.wants/:", "/var/lib/safeapply/deadman/:"]
    while time.time() < armed.deadline_at.timestamp() + 5:  # past the deadline: nothing may happen
        time.sleep(1)
    assert sb.sh("cat /etc/safeapply-good-marker").strip() == "kept"
    with sb.transport() as t:
        assert deadman.fired_record(t, armed.run_id) is None


def test_reboot_before_deadline_still_fires(sandbox_factory, tmp_path: Path) -> None:
    sb = sandbox_factory("dm-reboot")
    armed, before, scan = _prepare(sb, tmp_path, "lib-reboot")
    sb.sh("echo half > /etc/safeapply-half-applied && sed -i 's/^#\\?Port .*/Port 2222/' /etc/ssh/sshd_config")
    sb.sh_rc("systemctl reboot")
    out = deadman.wait_for_restore(_host(sb), armed, before_listing=before, before_scan=scan, poll_s=1)
    _assert_restored(sb, out, armed)
    assert out.fired is not None and out.fired["rebooted_since_arm"] is True
    assert sb.sh_rc("test -e /etc/safeapply-half-applied")[0] != 0


def test_extend_moves_the_deadline(sandbox_factory, tmp_path: Path) -> None:
    sb = sandbox_factory("dm-extend")
    armed, _b, _s = _prepare(sb, tmp_path, "lib-extend")
    with sb.transport() as t:
        later = deadman.extend(t, armed, 600)
        assert later.deadline_at > armed.deadline_at
        cfg = deadman.status(t, armed.run_id)["config"]
        assert cfg["deadline"] == later.deadline
        assert deadman.disarm(t, later) is None
    assert json.loads(json.dumps(later.to_dict()))["run_id"] == "lib-extend"
