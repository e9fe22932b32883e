"""How a run ends, decided in one place: each host's outcome -> the run's exit code and one-line message.

Before apply, a run ends by its first error, whose class owns the code (10-19, nothing changed). From apply on,
every host ends in one of `HostEnd`, and `decide` turns them into 0 / 6 / 20 / 21 — the worst host wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from safeapply.errors import ExitCode


class HostEnd(StrEnum):
    APPLIED = "applied"  # applied (or nothing to do) and verified; its switch disarmed
    ROLLED_BACK = "rolled-back"  # the controller rolled it back and the rollback verified
    SELF_RESTORED = "self-restored"  # its dead-man's switch restored it and the restore verified
    NOT_RESTORED = "not-restored"  # a rollback or self-restore failed or could not be verified


@dataclass(frozen=True)
class HostOutcome:
    name: str
    end: HostEnd


@dataclass(frozen=True)
class RunOutcome:
    code: int
    message: str
    hosts: tuple[HostOutcome, ...] = field(default=())

    @property
    def status(self) -> str:
        from safeapply.errors import status_of

        return status_of(self.code)


def decide(hosts: Sequence[HostOutcome], *, changed: bool, why: str = "",
           switched: Sequence[str] = ()) -> RunOutcome:
    """The run's code from its hosts' ends. `why` says what failed (apply, verification, an error after
    apply); `switched` names the hosts whose switch fired (shut out after apply), whatever came of it."""
    by_end = {end: [h.name for h in hosts if h.end is end] for end in HostEnd}
    parts: list[str] = []
    if switched:
        bad = [n for n in switched if n in by_end[HostEnd.NOT_RESTORED]]
        parts.append(f"unreachable after apply; self-restore not verified: {', '.join(bad)}" if bad else
                     f"unreachable after apply; restored by the dead-man's switch: {', '.join(switched)}")
    rolled = by_end[HostEnd.ROLLED_BACK]
    failed = [n for n in by_end[HostEnd.NOT_RESTORED] if n not in switched]
    if rolled or failed:
        parts.append(f"{why}; rollback did not restore {', '.join(failed)}" if failed else
                     f"{why}; rolled back and verified: {', '.join(rolled)}")
    outcome = tuple(hosts)
    if by_end[HostEnd.NOT_RESTORED]:
        return RunOutcome(ExitCode.ROLLBACK_FAILED, "; ".join(parts), outcome)
    if rolled or by_end[HostEnd.SELF_RESTORED]:
        return RunOutcome(ExitCode.ROLLED_BACK, "; ".join(parts), outcome)
    if not changed:
        return RunOutcome(ExitCode.NOTHING_TO_CHANGE, "nothing to change", outcome)
    return RunOutcome(ExitCode.OK, f"applied and verified on {len(outcome)} host(s)", outcome)
