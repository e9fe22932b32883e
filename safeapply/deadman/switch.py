"""Controller side of the dead-man's switch: arm, extend, disarm, read what fired. One round trip each, to
the `deadman.*` entries of the on-host package (`safeapply.target.deadman`), as root."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from safeapply import remote
from safeapply.errors import UsageError
from safeapply.lock import stale_switch_error
from safeapply.target.layout import BASE as TARGET_BASE
from safeapply.transport.base import Transport

DEFAULT_DEADLINE = 300.0


@dataclass(frozen=True)
class Armed:
    """What is armed on one host; JSON-able for the run record (`to_dict`/`from_dict`)."""

    host: str
    run_id: str
    snapshot_id: str | None
    deadline: str  # ISO 8601 UTC: the host restores itself at this time unless disarmed
    deadline_s: float
    units: tuple[str, ...] = ()
    firewall: dict[str, str] = field(default_factory=dict)
    unit: str = ""

    @property
    def deadline_at(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.deadline)

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


def _deadline(seconds: float) -> str:
    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    return at.replace(microsecond=0).isoformat()


def arm(transport: Transport, run_id: str, snapshot_id: str | None, deadline_s: float = DEFAULT_DEADLINE,
        units: Sequence[str] = (), target_base: str = TARGET_BASE) -> Armed:
    """Arm the switch on the host: unless disarmed before `deadline_s` seconds from now, the host restores
    snapshot `snapshot_id` (its on-target copy), the firewall saved now, and restarts sshd, networking and
    `units`. Call it after the snapshot and before apply. Refused (LockedError, exit 4, host untouched) while
    another run's switch is armed there and has not fired: it would restore on top of this run."""
    if deadline_s < 10:
        raise UsageError(f"dead-man deadline {deadline_s}s is too short", "use at least 10 seconds")
    cfg = {"run_id": run_id, "snapshot_id": snapshot_id, "deadline": _deadline(deadline_s),
           "deadline_s": deadline_s, "units": list(units), "base": target_base}
    doc = _call(transport, ["arm"], json.dumps(cfg).encode())
    if doc.get("blocked"):
        raise stale_switch_error(transport.name, list(doc["blocked"]), "not arming the dead-man's switch")
    c = doc["config"]
    return Armed(transport.name, run_id, snapshot_id, c["deadline"], deadline_s, tuple(units),
                 dict(c.get("firewall") or {}), doc["unit"])


def extend(transport: Transport, armed: Armed, deadline_s: float | None = None) -> Armed:
    """Push the deadline to `deadline_s` (default: the armed one) from now: a keepalive during a long apply."""
    secs = armed.deadline_s if deadline_s is None else deadline_s
    when = _deadline(secs)
    _call(transport, ["extend", armed.run_id, when])
    return Armed(**{**armed.to_dict(), "deadline": when, "deadline_s": secs, "units": armed.units})


def disarm(transport: Transport, armed: Armed | str) -> dict[str, Any] | None:
    """Stop and remove the switch. Returns None when disarmed in time, or the host's fired record when it
    had already fired (the host was restored: the caller must report that, not success)."""
    run_id = armed if isinstance(armed, str) else armed.run_id
    doc = _call(transport, ["disarm", run_id])
    fired: dict[str, Any] | None = doc.get("fired")
    return fired


def status(transport: Transport, run_id: str) -> dict[str, Any]:
    """{"armed": bool, "config": {...} | None, "fired": {...} | None} for one run on one host."""
    return _call(transport, ["status", run_id])


def fired_record(transport: Transport, run_id: str) -> dict[str, Any] | None:
    """What the host did when the switch fired for `run_id` (None if it did not fire): lets `safeapply show`
    tell the whole story, also for a run whose controller was killed."""
    fired: dict[str, Any] | None = status(transport, run_id).get("fired")
    return fired
