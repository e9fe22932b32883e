"""What a playbook will bind, start, stop and write on each host — resolved per host with Ansible itself.

Stable interface (the run pipeline calls it):

    playbook_intent(playbook, inventory_sources, limit=None, extra_vars=()) -> dict[str, Intent]

`Intent` (see `safeapply.intent.model`) lists `binds` (proto, address, port, the task, the owning container or
unit), `units` (install/start/stop/restart/enable/disable/mask operations), `containers` (engine, name, image,
state, network mode), `files` (paths written) and `notes` (what could not be resolved: unresolved variables,
host-network containers with unknown ports, dynamic includes). Nothing is guessed: an argument that cannot be
templated for a host is a note, not a value. No lookup runs while resolving (see `load.lookups_disabled`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from safeapply.intent.extract import Extractor
from safeapply.intent.load import PlaybookLoader, lookups_disabled
from safeapply.intent.model import Bind, ContainerOp, FileWrite, Intent, Note, TaskRef, UnitOp

__all__ = ["Bind", "ContainerOp", "FileWrite", "Intent", "Note", "TaskRef", "UnitOp", "playbook_intent"]


def playbook_intent(playbook: Path | str, inventory_sources: Sequence[str], limit: str | None = None,
                    extra_vars: Sequence[str] = ()) -> dict[str, Intent]:
    """Per host (inventory name): what the playbook will do there. Raises UsageError / NoHostsMatched."""
    with lookups_disabled():
        return _intents(Path(playbook), inventory_sources, limit, extra_vars)


def _intents(pb: Path, inventory_sources: Sequence[str], limit: str | None,
             extra_vars: Sequence[str]) -> dict[str, Intent]:
    loader = PlaybookLoader(pb, inventory_sources, extra_vars)
    out: dict[str, Intent] = {}
    for host in loader.hosts(limit):
        ex = Extractor(host, pb.resolve().parent)
        for rt in loader.tasks(host):
            try:
                ex.add(rt)
            except Exception as e:  # one task this analysis cannot read is a warning, not a crash
                ex.note("not-analysed", f"this task could not be analysed ({type(e).__name__}: {e})", rt)
        out[host] = ex.finish()
    return out
