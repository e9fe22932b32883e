"""What rollback does to units, decided from the pre-run scan and the scan after files came back (pure)."""

from __future__ import annotations

from safeapply.probe.model import HostState, Unit
from safeapply.rollback import unit_actions


def _state(*units: Unit) -> HostState:
    return HostState("h", units=units)


def test_a_unit_the_run_created_is_stopped_and_its_failed_state_cleared() -> None:
    running = Unit("new.service", "not-found", "active", "running", "", main_pid=42)
    # a stop can race the unit's own failing exit; reset-failed makes "inactive" certain
    assert unit_actions(_state(), _state(running), []) == [("stop", "new.service"),
                                                           ("reset-failed", "new.service")]
    looping = Unit("new.service", "not-found", "activating", "auto-restart", "")
    assert unit_actions(_state(), _state(looping), []) == [("stop", "new.service"),
                                                           ("reset-failed", "new.service")]
    failed = Unit("new.service", "not-found", "failed", "failed", "")
    assert unit_actions(_state(), _state(failed), []) == [("reset-failed", "new.service")]


def test_a_unit_the_run_stopped_is_started_and_one_it_restarted_is_restarted() -> None:
    before = _state(Unit("a.service", "loaded", "active", "running", "enabled", main_pid=1),
                    Unit("b.service", "loaded", "active", "running", "enabled", main_pid=2))
    now = _state(Unit("b.service", "loaded", "active", "running", "enabled", main_pid=3))
    assert unit_actions(before, now, []) == [("restart", "b.service"), ("start", "a.service")]


def test_the_runs_own_deadman_units_are_left_to_their_guard() -> None:
    switch = Unit("safeapply-deadman-x.timer", "loaded", "active", "waiting", "")
    assert unit_actions(_state(), _state(switch), []) == []
