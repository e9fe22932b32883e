"""The dead-man's switch never takes its deadline from the controller's clock (issue 11 item 2).

Sandboxes share this machine's kernel clock, and no clock is ever set here: the skew is made on the controller
side, by running `safeapply run` with its wall clock shifted for that process alone
(`tests/clockshift/sitecustomize.py`; its monotonic clock and the processes it starts keep the true time).
A controller whose clock is behind or ahead of the host by more than the deadline still gets a lockout
restored by the host itself (exit 20), a healthy apply longer than the gap between keepalives is not
disturbed (exit 0), and the skew is measured and warned about."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Sandbox

from safeapply import deadman
from safeapply.deadman.confirm import listing_differences
from safeapply.records import RunStore
from safeapply.snapshot import Store, listing, take

pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).parent.parent
LOCKOUT = ROOT / "playbooks" / "lockout"
DEADLINE = 20.0
SLOW_HEALTHY = """- name: a healthy change that takes longer than the gap between two keepalives
  hosts: all
  become: true
  tasks:
    - name: Add a file under /etc
      ansible.builtin.copy: {dest: /etc/safeapply-clock-marker, content: "kept\\n", mode: "0644"}
    - name: Take a while
      ansible.builtin.command: sleep 12
      changed_when: false
"""


@pytest.fixture(scope="module")
def host(sandbox_factory: Callable[[str], Sandbox]) -> Sandbox:
    return sandbox_factory("clk")


def _run(sb: Sandbox, playbook: Path, state: Path, offset_s: int) -> subprocess.CompletedProcess[str]:
    """`safeapply run` with its wall clock `offset_s` seconds off (this process and its children only)."""
    env = {**os.environ, "SAFEAPPLY_STATE_DIR": str(state), "SAFEAPPLY_TEST_CLOCK_SHIFT": str(offset_s),
           "PYTHONPATH": f"{ROOT / 'tests' / 'clockshift'}:{ROOT}"}
    argv = [str(Path(sys.executable).parent / "safeapply"), "run", str(playbook), "-i", str(sb.inventory), "--yes",
            "--deadman-deadline", f"{DEADLINE:g}"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=900)


def _switch(state: Path, sb: Sandbox) -> tuple[int | None, dict[str, object]]:
    rec = RunStore(state / "runs.sqlite").get("last")
    return rec.exit_code, rec.sections["snapshots"][sb.name]["deadman"]


def test_the_switch_counts_a_duration_on_the_hosts_clock(host: Sandbox, tmp_path: Path) -> None:
    """Armed with a duration: monotonic timer triggers only (no OnCalendar), and the host reports what it has
    left; a daemon-reload (a playbook's, a rollback's) does not push the deadline back."""
    with host.transport() as t:
        info = take(t, store=Store(tmp_path / "store"))
        armed = deadman.arm(t, "clk-lib", info.id, DEADLINE)
        try:
            unit = "safeapply-deadman-clk-lib.timer"
            assert host.sh(f"systemctl show -p TimersCalendar --value {unit}").strip() == ""
            mono = host.sh(f"systemctl show -p TimersMonotonic --value {unit}")
            assert "OnStartupUSec" in mono and "OnActiveUSec" in mono, mono
            assert armed.remaining_s is not None and 0 < armed.remaining_s <= DEADLINE
            assert armed.skew_s is not None and abs(armed.skew_s) < 5 and armed.skew_warning() == ""
            first = deadman.status(t, "clk-lib")["remaining_s"]
            host.sh("sleep 2 && systemctl daemon-reload")
            after = deadman.status(t, "clk-lib")["remaining_s"]
            assert first is not None and after is not None and after < first  # still counting down, not reset
        finally:
            assert deadman.disarm(t, armed) is None


def test_controller_clock_behind_a_healthy_apply_is_not_disturbed(host: Sandbox, tmp_path: Path) -> None:
    """15 s behind with a 20 s deadline: a deadline sent as a time would be 5 s away from the host's view, and
    fire between two keepalives in the middle of this apply."""
    pb = tmp_path / "slow-healthy.yml"
    pb.write_text(SLOW_HEALTHY)
    proc = _run(host, pb, tmp_path / "state", -15)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    code, dm = _switch(tmp_path / "state", host)
    assert code == 0 and dm["outcome"] == "disarmed", dm
    assert "clock is" in out and "ahead of the controller's" in out  # the host is ahead of this controller
    armed = dm["armed"]
    assert isinstance(armed, dict) and armed["skew_s"] > 10, armed
    assert "ahead of the controller's" in str(dm.get("warning")), dm
    assert host.sh("cat /etc/safeapply-clock-marker").strip() == "kept"
    with host.transport() as t:
        assert deadman.status(t, str(RunStore(tmp_path / "state" / "runs.sqlite").get("last").id))["fired"] is None


@pytest.mark.parametrize("offset_s", [-60, 200], ids=["behind-60s", "ahead-200s"])
def test_controller_clock_off_a_lockout_is_still_restored(host: Sandbox, tmp_path: Path, offset_s: int) -> None:
    """Behind by more than the deadline: as a time, the deadline is in the host's past (never fires). Ahead by
    more than deadline + the controller's wait margin: it fires after the controller gave up waiting."""
    with host.transport() as t:
        before = listing(t)
    proc = _run(host, LOCKOUT / "sshd-port.yml", tmp_path / "state", offset_s)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 20, out
    code, dm = _switch(tmp_path / "state", host)
    assert code == 20 and dm["outcome"] == "restored", dm
    assert host.sh("echo back").strip() == "back"  # port 22 again
    with host.transport() as t:
        assert listing_differences(before, listing(t)) == []
