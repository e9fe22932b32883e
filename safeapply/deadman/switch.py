"""Controller side of the dead-man's switch: arm, extend, disarm, read what fired. One round trip each, to
the `deadman.*` entries of the on-host package (`safeapply.target.deadman`), as root.

The controller never sends a time, only a duration: the host counts it on its own monotonic clock and
answers with the seconds it has left. The controller keeps that answer against its own monotonic clock
(`Armed.due`), so no wall clock — the controller's or the host's — moves the deadline or the wait for it.
The skew between the two wall clocks is measured at arm and reported (`Armed.skew_s`, a warning above
`SKEW_WARN`): it changes nothing in the switch, but the times in the record come from two clocks."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from safeapply import remote
from safeapply.errors import UsageError
from safeapply.lock import stale_switch_error
from safeapply.target.layout import BASE as TARGET_BASE
from safeapply.transport.base import Transport

DEFAULT_DEADLINE = 300.0
SKEW_WARN = 10.0  # seconds between the host's wall clock and the controller's worth a warning


@dataclass(frozen=True)
class Armed:
    """What is armed on one host; JSON-able for the run record (`to_dict`/`from_dict`)."""

    host: str
    run_id: str
    snapshot_id: str | None
    deadline: str  # ISO 8601, by the HOST's wall clock (for people): it restores itself then unless disarmed
    deadline_s: float  # the duration the host counts on its own monotonic clock from the last arm/extend
    units: tuple[str, ...] = ()
    firewall: dict[str, str] = field(default_factory=dict)
    unit: str = ""
    remaining_s: float | None = None  # what the host answered it had left, at `at_mono`
    at_mono: float = 0.0  # this controller's time.monotonic() when that answer arrived
    skew_s: float | None = None  # host wall clock minus controller wall clock, measured at arm

    @property
    def deadline_at(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.deadline)

    def due(self) -> float:
        """When the host fires, on this controller's time.monotonic(): from the host's answer; never later
        than `deadline_s` from now (the host's count restarted at the last arm/extend, which came before)."""
        now = time.monotonic()
        left = self.deadline_s if self.remaining_s is None else self.remaining_s
        return min(self.at_mono + left, now + self.deadline_s) if self.at_mono else now + left

    def left(self) -> float:
        """Seconds before the host fires, as far as it last told us."""
        return max(0.0, self.due() - time.monotonic())

    def skew_warning(self) -> str:
        """One line when the host's wall clock is far from the controller's, else ''."""
        if self.skew_s is None or abs(self.skew_s) <= SKEW_WARN:
            return ""
        way = "ahead of" if self.skew_s > 0 else "behind"
        return (f"warning: {self.host}: its clock is {abs(self.skew_s):.0f} s {way} the controller's (more than "
                f"{SKEW_WARN:g} s): the dead-man's switch counts on the host's own clock and is not affected, but "
                "times from the host and the controller differ; set up NTP")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["units"] = list(self.units)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Armed:
        return cls(**{**d, "units": tuple(d.get("units", ()))})


def _call(t: Transport, args: Sequence[str], stdin: bytes | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(remote.call(t, f"deadman.{args[0]}", args[1:], stdin=stdin, timeout=1200))
    return doc


def arm(transport: Transport, run_id: str, snapshot_id: str | None, deadline_s: float = DEFAULT_DEADLINE,
        units: Sequence[str] = (), target_base: str = TARGET_BASE) -> Armed:
    """Arm the switch on the host: unless disarmed before `deadline_s` seconds from now, the host restores
    snapshot `snapshot_id` (its on-target copy), the firewall saved now, and restarts sshd, networking and
    `units`. Call it after the snapshot and before apply. Refused (LockedError, exit 4, host untouched) while
    another run's switch is armed there and has not fired: it would restore on top of this run."""
    if deadline_s < 10:
        raise UsageError(f"dead-man deadline {deadline_s}s is too short", "use at least 10 seconds")
    sent = time.time()  # also: Ansible names its temp dirs on hosts after this clock; the fire stops those since
    cfg = {"run_id": run_id, "snapshot_id": snapshot_id, "deadline_s": deadline_s, "units": list(units),
           "base": target_base, "tasks_since": sent}
    doc = _call(transport, ["arm"], json.dumps(cfg).encode())
    back, mono = time.time(), time.monotonic()
    if doc.get("blocked"):
        raise stale_switch_error(transport.name, list(doc["blocked"]), "not arming the dead-man's switch")
    c = doc["config"]
    # the host read its clock on receipt: somewhere in [sent, back]; the middle is off by (back - sent) / 2 at most
    skew = float(doc["clock"]) - (sent + back) / 2 if doc.get("clock") is not None else None
    if skew is not None and abs(skew) <= (back - sent) / 2:
        skew = 0.0
    return Armed(transport.name, run_id, snapshot_id, c["deadline"], deadline_s, tuple(units),
                 dict(c.get("firewall") or {}), doc["unit"], _left(doc), mono,
                 None if skew is None else round(skew, 1))


def extend(transport: Transport, armed: Armed, deadline_s: float | None = None) -> Armed:
    """Restart the host's count at `deadline_s` (default: the armed one) from now: a keepalive during a long
    apply. The host answers with its own deadline and the seconds it has left."""
    secs = armed.deadline_s if deadline_s is None else deadline_s
    doc = _call(transport, ["extend", armed.run_id, repr(float(secs))])
    return Armed(**{**armed.to_dict(), "deadline": doc["deadline"], "deadline_s": secs, "units": armed.units,
                    "remaining_s": _left(doc), "at_mono": time.monotonic()})


def _left(doc: dict[str, Any]) -> float | None:
    left = doc.get("remaining_s")
    return None if left is None else float(left)


def disarm(transport: Transport, armed: Armed | str) -> dict[str, Any] | None:
    """Stop and remove the switch. Returns None when disarmed in time, or the host's fired record when it
    had already fired (the host was restored: the caller must report that, not success)."""
    run_id = armed if isinstance(armed, str) else armed.run_id
    doc = _call(transport, ["disarm", run_id])
    fired: dict[str, Any] | None = doc.get("fired")
    return fired


def status(transport: Transport, run_id: str) -> dict[str, Any]:
    """{"armed": bool, "config": {...} | None, "fired": {...} | None, "remaining_s": seconds | None} for one
    run on one host (`remaining_s`: how long before it fires, on the host's own clock)."""
    return _call(transport, ["status", run_id])


def fired_record(transport: Transport, run_id: str) -> dict[str, Any] | None:
    """What the host did when the switch fired for `run_id` (None if it did not fire): lets `safeapply show`
    tell the whole story, also for a run whose controller was killed."""
    fired: dict[str, Any] | None = status(transport, run_id).get("fired")
    return fired
