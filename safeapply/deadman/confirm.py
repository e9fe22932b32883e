"""After apply and verification: confirm over a NEW connection and disarm; or, when the host shut us out,
wait for it to restore itself and verify the restore against the pre-run `/etc` listing and scan."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from safeapply.compare import listing_differences, scan_differences
from safeapply.deadman.switch import Armed, disarm, extend, status
from safeapply.errors import ExitCode, HostKeyError, SafeapplyError
from safeapply.transport.base import Transport

DEFAULT_MARGIN = 90.0
Progress = Callable[[str], None]


class Connectable(Protocol):
    @property
    def name(self) -> str: ...

    def connect(self, accept_new_host_keys: bool = False) -> Transport: ...


@dataclass
class SwitchOutcome:
    """disarmed: confirmed in time, nothing restored. armed: reachable and kept armed on purpose (the host is
    about to be rolled back by the controller; `armed` is its new count). restored: the host restored itself
    and the restore verified (exit 20). rollback-failed: it did not come back, or came back different (21)."""

    host: str
    status: str  # disarmed | armed | restored | rollback-failed
    message: str
    fired: dict[str, Any] | None = None
    differences: list[str] = field(default_factory=list)
    armed: Armed | None = None

    @property
    def exit_code(self) -> ExitCode | None:
        return {"restored": ExitCode.ROLLED_BACK, "rollback-failed": ExitCode.ROLLBACK_FAILED}.get(self.status)

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "status": self.status, "message": self.message, "fired": self.fired,
                "differences": self.differences}


def confirm_or_wait(host: Connectable, armed: Armed, *, accept_new_host_keys: bool = False,
                    before_listing: dict[str, dict[str, Any]] | None = None, before_scan: Any = None,
                    roots: Sequence[str] = ("/etc",), margin_s: float = DEFAULT_MARGIN, poll_s: float = 2.0,
                    progress: Progress | None = None, keep_armed: bool = False) -> SwitchOutcome:
    """Open a new connection and disarm. If that fails, the host is shut off from us: say when it restores
    itself, wait until then (plus `margin_s`) for it to come back, and verify what it restored.
    `keep_armed`: the host failed and the controller rolls it back next; the switch stays armed through that
    rollback (its count restarted now), and is disarmed only once the rollback is verified."""
    say = progress or (lambda _m: None)
    try:
        with host.connect(accept_new_host_keys) as t:
            if keep_armed:
                st = status(t, armed.run_id)
                fired = st.get("fired")
                if fired is None:
                    kept = extend(t, armed)
                    return SwitchOutcome(host.name, "armed", f"{host.name}: reachable; the dead-man's switch stays "
                                         "armed through the rollback", armed=kept)
            else:
                fired = disarm(t, armed)
            if fired is None:
                return SwitchOutcome(host.name, "disarmed", f"{host.name}: confirmed over a new connection; disarmed")
            say(f"{host.name}: the dead-man's switch fired before it could be disarmed")
            return verify_restore(t, armed, fired, before_listing, before_scan, roots)
    except HostKeyError:
        raise
    except SafeapplyError as e:
        say(f"{host.name}: unreachable after apply ({e.message}); the host restores itself at {armed.deadline} "
            f"by its own clock (in {armed.left():.0f} s)")
    return wait_for_restore(host, armed, accept_new_host_keys=accept_new_host_keys, before_listing=before_listing,
                            before_scan=before_scan, roots=roots, margin_s=margin_s, poll_s=poll_s, progress=say)


def wait_for_restore(host: Connectable, armed: Armed, *, accept_new_host_keys: bool = False,
                     before_listing: dict[str, dict[str, Any]] | None = None, before_scan: Any = None,
                     roots: Sequence[str] = ("/etc",), margin_s: float = DEFAULT_MARGIN, poll_s: float = 2.0,
                     progress: Progress | None = None) -> SwitchOutcome:
    """Poll until the host is reachable and its switch has fired, or until its deadline + margin. The deadline
    is the host's: what it last said it had left (`Armed.due`, on this controller's monotonic clock), updated
    whenever it answers; no wall clock is read."""
    say = progress or (lambda _m: None)
    give_up = armed.due() + margin_s
    last = "not reached yet"
    while time.monotonic() < give_up:
        try:
            with host.connect(accept_new_host_keys) as t:
                st = status(t, armed.run_id)
                fired = st.get("fired")
                if fired is not None:
                    say(f"{host.name}: back; the dead-man's switch fired at {fired.get('fired_at')}")
                    return verify_restore(t, armed, fired, before_listing, before_scan, roots)
                if st.get("remaining_s") is not None:  # the host's own count: wait for that, not for ours
                    give_up = time.monotonic() + float(st["remaining_s"]) + margin_s
                last = "reachable, but the switch has not fired yet"
        except HostKeyError:
            raise
        except SafeapplyError as e:
            last = e.message
        time.sleep(poll_s)
    waited = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return SwitchOutcome(host.name, "rollback-failed",
                         f"{host.name}: did not come back restored by {waited} (its deadline + {margin_s:g} s; "
                         f"{last}); a person must look")


def verify_restore(t: Transport, armed: Armed, fired: dict[str, Any], before_listing: dict[str, dict[str, Any]]
                   | None, before_scan: Any, roots: Sequence[str]) -> SwitchOutcome:
    """Compare the host now with the pre-run listing and scan; the fired record's failed steps count too."""
    diffs = [f"step {s.get('step')}: `{' '.join(s.get('argv') or [])}` exited {s.get('rc')}"
             for s in fired.get("steps", []) if s.get("rc") != 0]
    if before_listing is not None:
        from safeapply.snapshot import listing

        diffs += listing_differences(before_listing, listing(t, roots))
    if before_scan is not None:
        from safeapply.scan import scan_host

        diffs += scan_differences(before_scan, scan_host(t))
    if diffs:
        return SwitchOutcome(t.name, "rollback-failed", f"{t.name}: restored itself, but {len(diffs)} differences "
                             "remain from the pre-run state; a person must look", fired, diffs)
    n = len(fired.get("restored") or [])
    return SwitchOutcome(t.name, "restored", f"{t.name}: unreachable after apply; restored itself at "
                   f"{fired.get('fired_at')} ({n} paths put back) and matches its pre-run state", fired)
