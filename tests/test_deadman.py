"""The dead-man's switch at the library level, on real sandbox hosts over real SSH, with real ansible-playbook:
a host that shut the controller out restores itself; a disarmed switch never fires; a reboot before the
deadline keeps the protection. Deadlines are short (20 s) so the suite stays quick.

The switch is called with what the pipeline (`safeapply/run.py`) passes it: armed with the units the plan
expects of the playbook, confirmed with no pre-run state to compare. Whether the host really is as it was
before the run is checked by the tests themselves, against a listing of /etc and a scan taken before arming."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from safeapply import deadman, plan
from safeapply.deadman.confirm import listing_differences, scan_differences
from safeapply.errors import UsageError
from safeapply.intent import playbook_intent
from safeapply.inventory import resolve_hosts
from safeapply.scan import scan_host
from safeapply.snapshot import Store, listing, take
from safeapply.target import deadman as target
from safeapply.transport.local import LocalTransport

LOCKOUT = Path(__file__).parent.parent / "playbooks" / "lockout"
ANSIBLE = Path(sys.executable).parent / "ansible-playbook"
DEADLINE = 20.0


def _host(sb):
    return resolve_hosts([str(sb.inventory)], sb.name)[0]


def _units(sb, playbook: str | None) -> list[str]:
    """The units the pipeline arms the switch with: `sorted(h.expect.units)`, what the plan expects to run
    after the playbook (none when no playbook runs)."""
    if playbook is None:
        return []
    intent = playbook_intent(LOCKOUT / playbook, [str(sb.inventory)])[sb.name]
    return sorted(plan.expectations(intent).units_active)


def _prepare(sb, tmp_path: Path, run_id: str, playbook: str | None = None, deadline: float = DEADLINE):
    """What the pipeline does before apply: snapshot, then arm with the units of `playbook`. Before arming, the
    test's own record of the host: the /etc listing and a scan (the pipeline hands the switch neither)."""
    units = _units(sb, playbook)
    with sb.transport() as t:
        info = take(t, store=Store(tmp_path / "store"))
        before = listing(t), scan_host(t)
        armed = deadman.arm(t, run_id, info.id, deadline, units)
    assert armed.units == tuple(units)
    return armed, before


def _confirm(sb, armed: deadman.Armed) -> deadman.Outcome:
    """As the pipeline confirms (`Pipeline._confirm_one`): a new connection, the default margin, nothing to
    compare. (poll_s only makes the wait for a shut-out host notice its return sooner.)"""
    return deadman.confirm_or_wait(_host(sb), armed, poll_s=1)


def _playbook(sb, name: str) -> None:
    proc = subprocess.run([str(ANSIBLE), "-i", str(sb.inventory), str(LOCKOUT / name)],
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _locked_out(sb) -> bool:
    return sb.sh_rc("true")[0] != 0


def _assert_restored(sb, out: deadman.Outcome, armed: deadman.Armed, before) -> None:
    """The switch says restored, and the host is as it was before the run: /etc, running services, ports."""
    assert out.status == "restored", out.to_dict()
    assert out.exit_code == 20
    assert out.differences == []
    assert out.fired is not None and out.fired["ok"] and out.fired["run_id"] == armed.run_id
    assert sb.sh("echo back").strip() == "back"  # plain OpenSSH as root, port 22: the way in is open again
    assert sb.sh(f"ls /usr/local/lib/systemd/system/ | grep -c {armed.run_id} || true").strip() == "0"
    before_listing, before_scan = before
    with sb.transport() as t:
        assert deadman.fired_record(t, armed.run_id) == out.fired
        assert listing_differences(before_listing, listing(t)) == []
        assert scan_differences(before_scan, scan_host(t)) == []


# ---- pure parts ------------------------------------------------------------------------------------------

def test_timer_counts_a_duration_on_the_hosts_monotonic_clock() -> None:
    text = target.timer_text("r1", 20.4, 123456)
    assert "OnCalendar" not in text and "Persistent" not in text  # no wall clock: none can move it
    assert "OnStartupSec=123456ms" in text and "OnActiveSec=20s" in text
    assert "AccuracySec=1s" in text and "WantedBy=timers.target" in text  # started again at boot
    assert target.parse_timespan("3h 21min 41.959100s") == pytest.approx(12101.9591)
    assert target.parse_timespan("1month 2w 1d 500ms 3us") == pytest.approx(2629800 + 1209600 + 86400 + 0.500003)
    assert target.parse_timespan("") is None and target.parse_timespan("0") is None
    assert target.paths("r1")["timer"].startswith("/usr/local/lib/systemd/system/")  # never under /etc


def test_bad_run_id_rejected() -> None:
    with pytest.raises(target.Fail):
        target.unit_name("../../etc/x")


def test_listing_differences(tmp_path: Path) -> None:
    """On listings as `snapshot.listing` makes them (every field of every entry), of a temp dir here."""
    root = tmp_path / "etc"
    root.mkdir()
    for name in ("a", "b", "d"):
        (root / name).write_text(f"{name}\n")
    t = LocalTransport("local")
    before = listing(t, [str(root)])
    assert listing_differences(before, before) == []
    assert listing_differences(before, listing(t, [str(root)])) == []  # looked at again, unchanged
    mtimes = {p: p.stat().st_mtime_ns for p in (root, root / "a")}
    (root / "a").write_text("changed\n")
    (root / "b").unlink()
    (root / "c").write_text("c\n")
    (root / "d").chmod(0o600)
    for p, ns in mtimes.items():  # only the content of a differs, not its mtime; nor the dir's
        os.utime(p, ns=(ns, ns))
    assert listing_differences(before, listing(t, [str(root)])) == [
        f"{root}/b: missing after restore", f"{root}/c: not there before the run", f"{root}/a: h differ",
        f"{root}/d: m differ"]


@pytest.mark.sandbox
def test_too_short_deadline(host_a) -> None:
    with host_a.transport() as t, pytest.raises(UsageError):
        deadman.arm(t, "short", None, 2)


# ---- on sandbox hosts ------------------------------------------------------------------------------------

@pytest.mark.sandbox
def test_sshd_moved_host_restores_itself(sandbox_factory, tmp_path: Path) -> None:
    sb = sandbox_factory("dm-port")
    armed, before = _prepare(sb, tmp_path, "lib-port", "sshd-port.yml")
    _playbook(sb, "sshd-port.yml")
    assert _locked_out(sb)
    out = _confirm(sb, armed)
    _assert_restored(sb, out, armed, before)
    assert "Port 2222" not in sb.sh("cat /etc/ssh/sshd_config")
    assert any(s["step"] == "sshd" and s["rc"] == 0 for s in out.fired["steps"])


@pytest.mark.sandbox
def test_allowusers_host_restores_itself(sandbox_factory, tmp_path: Path) -> None:
    sb = sandbox_factory("dm-allow")
    armed, before = _prepare(sb, tmp_path, "lib-allow", "sshd-allowusers.yml")
    _playbook(sb, "sshd-allowusers.yml")
    assert _locked_out(sb)
    out = _confirm(sb, armed)
    _assert_restored(sb, out, armed, before)


@pytest.mark.sandbox
def test_firewall_drop_ssh_host_restores_itself(sandbox_factory, tmp_path: Path) -> None:
    sb = sandbox_factory("dm-nft")
    rc, err = sb.sh_rc("nft list ruleset")
    assert rc == 0, f"nft must work inside the sandbox (CAP_NET_ADMIN in supervise.sh): {err.strip()}"
    # more time: the play, then the probes until the drop is seen, must fit before the deadline on a busy machine
    armed, before = _prepare(sb, tmp_path, "lib-nft", "nft-drop-ssh.yml", deadline=3 * DEADLINE)
    assert armed.firewall.get("nft") == "saved"
    _playbook(sb, "nft-drop-ssh.yml")
    while not _locked_out(sb):  # the rule is loaded two seconds after the play
        assert time.time() < armed.deadline_at.timestamp(), \
            "not shut out by the deadline: the switch may have fired (and reopened SSH) before a probe saw the drop"
        time.sleep(0.5)
    out = _confirm(sb, armed)
    _assert_restored(sb, out, armed, before)
    assert "dport 22" not in sb.sh("nft list ruleset")


@pytest.mark.sandbox
def test_disarmed_switch_never_fires(sandbox_factory, tmp_path: Path) -> None:
    sb = sandbox_factory("dm-good")
    armed, _before = _prepare(sb, tmp_path, "lib-good", "good.yml")
    sb.sh("echo kept > /etc/safeapply-good-marker")
    assert "safeapply-deadman-lib-good.timer" in sb.sh("systemctl list-timers --all --no-pager")
    out = _confirm(sb, armed)
    assert out.status == "disarmed" and out.exit_code is None
    assert "safeapply-deadman" not in sb.sh("systemctl list-timers --all --no-pager")
    assert sb.sh("ls /usr/local/lib/systemd/system/timers.target.wants/ /var/lib/safeapply/deadman/").split() \
        == ["/usr/local/lib/systemd/system/timers.target.wants/:", "/var/lib/safeapply/deadman/:"]
    while time.time() < armed.deadline_at.timestamp() + 5:  # past the deadline: nothing may happen
        time.sleep(1)
    assert sb.sh("cat /etc/safeapply-good-marker").strip() == "kept"
    with sb.transport() as t:
        assert deadman.fired_record(t, armed.run_id) is None


@pytest.mark.sandbox
def test_reboot_before_deadline_still_fires(sandbox_factory, tmp_path: Path) -> None:
    sb = sandbox_factory("dm-reboot")
    armed, before = _prepare(sb, tmp_path, "lib-reboot", "sshd-port.yml")  # half of that playbook, then a reboot
    sb.sh("echo half > /etc/safeapply-half-applied && sed -i 's/^#\\?Port .*/Port 2222/' /etc/ssh/sshd_config")
    sb.sh_rc("systemctl reboot")
    out = deadman.wait_for_restore(_host(sb), armed, poll_s=1)  # what confirm_or_wait waits with when shut out
    _assert_restored(sb, out, armed, before)
    assert out.fired is not None and out.fired["rebooted_since_arm"] is True
    assert sb.sh_rc("test -e /etc/safeapply-half-applied")[0] != 0


@pytest.mark.sandbox
def test_extend_moves_the_deadline(sandbox_factory, tmp_path: Path) -> None:
    sb = sandbox_factory("dm-extend")
    armed, _before = _prepare(sb, tmp_path, "lib-extend")
    with sb.transport() as t:
        later = deadman.extend(t, armed, 600)
        assert later.deadline_at > armed.deadline_at
        cfg = deadman.status(t, armed.run_id)["config"]
        assert cfg["deadline"] == later.deadline
        assert deadman.disarm(t, later) is None
    assert json.loads(json.dumps(later.to_dict()))["run_id"] == "lib-extend"
