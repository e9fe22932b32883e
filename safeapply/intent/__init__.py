"""What a playbook will bind, start, stop and write on each host — resolved per host with Ansible itself.

Stable interface (the run pipeline calls it):

    playbook_intent(playbook, inventory_sources, limit=None, extra_vars=(), selection=None) -> dict[str, Intent]

`selection` (`safeapply.intent.select.parse`: --tags, --skip-tags, --start-at-task) limits the tasks to those
Ansible's play iterator will run.

`Intent` (see `safeapply.intent.model`) lists `binds` (proto, address, port, the task, the owning container or
unit), `units` (install/start/stop/restart/enable/disable/mask operations), `containers` (engine, name, image,
state, network mode), `files` (paths written) and `notes` (what could not be resolved: unresolved variables,
host-network containers with unknown ports, dynamic includes). Nothing is guessed: an argument that cannot be
templated for a host is a note, not a value. No lookup runs while resolving (see `load.lookups_disabled`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from safeapply.errors import SafeapplyError
from safeapply.intent.extract import Extractor, feed
from safeapply.intent.facts import as_variables
from safeapply.intent.load import PlaybookLoader, lenient_module_names, lookups_disabled
from safeapply.intent.model import Bind, ContainerOp, FileWrite, Intent, Note, TaskRef, UnitOp
from safeapply.intent.select import Selection
from safeapply.probe.model import Facts

__all__ = ["Bind", "ContainerOp", "FileWrite", "Intent", "Note", "Selection", "TaskRef", "UnitOp", "playbook_intent",
           "with_facts"]


def playbook_intent(playbook: Path | str, inventory_sources: Sequence[str], limit: str | None = None,
                    extra_vars: Sequence[str] = (), facts: Mapping[str, Facts] | None = None,
                    selection: Selection | None = None) -> dict[str, Intent]:
    """Per host (inventory name): what the playbook will do there. `facts`: each host's scan facts, for the
    include names and `when:` that need them. Raises UsageError / NoHostsMatched."""
    from safeapply.ansible_errors import vault_errors

    with lookups_disabled(), lenient_module_names(), vault_errors():
        return _intents(Path(playbook), inventory_sources, limit, extra_vars, facts or {}, selection or Selection())


def _intents(pb: Path, inventory_sources: Sequence[str], limit: str | None, extra_vars: Sequence[str],
             facts: Mapping[str, Facts], selection: Selection) -> dict[str, Intent]:
    loader = PlaybookLoader(pb, inventory_sources, extra_vars, selection)
    out: dict[str, Intent] = {}
    for host in loader.hosts(limit):
        ex = Extractor(host, pb.resolve().parent)
        known = as_variables(facts[host]) if host in facts else None
        for rt in loader.tasks(host, known):
            feed(ex, rt)
        out[host] = ex.finish()
        out[host].source = (str(pb), tuple(inventory_sources), limit, tuple(extra_vars), selection)
    return out


def with_facts(intents: dict[str, Intent], facts: Mapping[str, Facts]) -> dict[str, Intent]:
    """Resolve again, with each scanned host's facts, the hosts where something was not analysed (an include
    or a `when:` may have needed a fact). Other hosts, and any host whose second resolution fails, keep theirs."""
    todo = {h for h, i in intents.items() if i.not_analysed and h in facts and i.source}
    if not todo:
        return intents
    source = intents[next(iter(todo))].source
    assert source is not None
    playbook, inventory, limit, extra_vars, selection = source
    try:
        again = playbook_intent(playbook, inventory, limit, extra_vars, {h: facts[h] for h in todo}, selection)
    except SafeapplyError:
        return intents
    out = dict(intents)
    for h in todo & again.keys():
        again[h].strict_plan = intents[h].strict_plan
        out[h] = again[h]
    return out
