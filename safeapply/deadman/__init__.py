"""The target-side dead-man's switch: a host that shut the controller out restores itself.

A plain stage with no knowledge of the pipeline (nothing here imports `safeapply.run`): the pipeline calls
these functions at its steps, keeps what they return on each host's state and writes the run record.
Per host (after the snapshot, before apply):

    armed = arm(transport, run_id, snapshot_id, deadline_s, units=units_the_playbook_touches)
    ... apply, verify (`Keepalive(transport, armed)` extends it while a long apply runs) ...
    outcome = confirm_or_wait(host, armed, before_listing=..., before_scan=...)   # NEW connection
    # outcome.status: disarmed | restored (exit 20) | rollback-failed (exit 21)

After a controller-side rollback, `disarm(new_transport, armed)`. `fired_record(transport, run_id)` reads
what a host did when its switch fired (also for a run whose controller was killed).
"""

from __future__ import annotations

from safeapply.deadman.confirm import SwitchOutcome, confirm_or_wait, wait_for_restore
from safeapply.deadman.switch import DEFAULT_DEADLINE, Armed, arm, disarm, extend, fired_record, status

__all__ = ["DEFAULT_DEADLINE", "Armed", "SwitchOutcome", "arm", "confirm_or_wait", "disarm", "extend", "fired_record",
           "status", "wait_for_restore"]
