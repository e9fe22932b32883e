"""The switch armed around a controller-side restore (`safeapply rollback RUN`, `safeapply restore`): if the
restore cuts SSH, or the controller dies half-way, the host restores the same snapshot itself at the deadline
and restarts sshd and networking. Kept alive while the restore runs; disarmed only once the caller knows the
host's outcome (`Guard.verified()`: the restore finished, or it failed without leaving the host half-restored,
see `half_restored`), else left armed to finish the restore."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from safeapply.deadman.keepalive import Keepalive
from safeapply.deadman.switch import Armed, arm, disarm
from safeapply.errors import LockedError, SafeapplyError
from safeapply.target.layout import BASE, RESTORE_JOURNAL
from safeapply.transport.base import Transport


@dataclass
class Guard:
    armed: Armed | None
    ok: bool = False
    notes: list[str] = field(default_factory=list)  # what became of the switch, for the report
    fired: dict[str, object] | None = None

    def verified(self) -> None:
        """The host's outcome is known (restored, or untouched): the switch may be disarmed on leaving the block."""
        self.ok = True

    def to_dict(self) -> dict[str, object]:
        return {"armed": None if self.armed is None else self.armed.to_dict(), "notes": self.notes,
                "fired": self.fired}


def half_restored(t: Transport, base: str = BASE) -> bool:
    """After a restore failed: does the host's restore journal say it stopped half-way? True also when the
    host cannot be asked (then the switch must stay armed to finish it)."""
    try:
        res = t.run(["test", "-e", f"{base}/{RESTORE_JOURNAL}"], sudo=True, timeout=60)
    except SafeapplyError:
        return True
    return res.rc != 1


@contextmanager
def armed_around(t: Transport, run_id: str, snapshot_id: str, deadline_s: float) -> Iterator[Guard]:
    """Arm (deadline_s <= 0: no switch), keep alive through the block, then disarm if `verified()` was called.
    A host that cannot be armed (no on-target copy of that snapshot, no systemd) is restored without it, and
    the guard says so; another run's armed switch there refuses (LockedError, exit 4)."""
    if deadline_s <= 0:
        yield Guard(None, notes=["no dead-man's switch (deadline 0)"])
        return
    try:
        guard = Guard(arm(t, run_id, snapshot_id, deadline_s))
    except LockedError:
        raise
    except SafeapplyError as e:
        yield Guard(None, notes=[f"restored without a dead-man's switch: {e}"])
        return
    assert guard.armed is not None
    keepalive = Keepalive(t, guard.armed)
    try:
        yield guard
    finally:
        guard.armed = keepalive.stop()
        if guard.ok:
            try:
                guard.fired = disarm(t, guard.armed)
                guard.notes.append("disarmed once the host was verified" if guard.fired is None else
                                   "the switch fired before it could be disarmed (the host restored itself)")
            except SafeapplyError as e:  # shut out by the restore itself: the switch restores the host
                guard.notes.append(f"dead-man's switch still armed, the host restores itself at "
                                   f"{guard.armed.deadline} by its own clock: {e}")
        else:
            guard.notes.append(f"left armed (the host is not verified): it restores itself at "
                               f"{guard.armed.deadline} by its own clock, unless `safeapply deadman --release`")
