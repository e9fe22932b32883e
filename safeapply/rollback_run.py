"""`safeapply rollback RUN`: return each host of a recorded run to its pre-run snapshot and scan.

Never blindly: the recorded inventory (absolute paths) is used, not the current directory's, and the run's
ansible.cfg (`run_config`: the CLI pins it; a file gone or changed since the run is refused); a host whose
/etc/machine-id is not the one the snapshot was taken of is refused; a snapshot older than `max_age` or a host
that later runs changed needs `force` (or a yes at the prompt, which shows what will be undone); each host is
rolled back under its host lock with the dead-man's switch armed around it, so a rollback that cuts SSH still
ends restored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from safeapply import deadman
from safeapply.deadman.around import armed_around
from safeapply.errors import UsageError
from safeapply.inventory import Host, resolve_hosts
from safeapply.lock import host_lock
from safeapply.records import RunRecord, RunStore
from safeapply.rollback import RollbackReport, files_restored, rollback_host
from safeapply.run_config import check_loaded
from safeapply.run_stages import machine_id, snapshot_ops
from safeapply.scan import HostState
from safeapply.snapshot.retention import RECENT
from safeapply.transport.base import Transport

DEFAULT_MAX_AGE = RECENT  # the snapshot retention keeps what a run this recent needs
Ask = Callable[[list[str]], bool]


def rollback_run(rec: RunRecord, store: RunStore, *, accept_new: bool = False, rollback_packages: bool = False,
                 force: bool = False, max_age: float = DEFAULT_MAX_AGE, deadline: float = deadman.DEFAULT_DEADLINE,
                 ask: Ask = lambda _lines: False) -> list[RollbackReport]:
    """Each host of the run that has a snapshot and a pre-run scan, checked, then rolled back."""
    snaps = rec.sections.get("snapshots") or {}
    scans = rec.sections.get("scans") or {}
    todo = {h: s for h, s in snaps.items() if s and s.get("id") and h in scans}
    if not todo:
        raise UsageError(f"run {rec.id} has no snapshot to return to", "it stopped before taking one")
    check_loaded(rec, force)  # the run's ansible.cfg (the CLI pinned it): its remote_user, become, vault ids
    hosts = {h.name: h for h in resolve_hosts(list(rec.sections.get("inventory") or []), "all")}
    missing = sorted(set(todo) - set(hosts))
    if missing:
        raise UsageError(f"host {missing[0]} of run {rec.id} is not in its inventory any more")
    worries = concerns(rec, store, max_age)
    return [_one(hosts[name], rec, store, snap, HostState.from_dict(scans[name]), worries, accept_new=accept_new,
                 rollback_packages=rollback_packages, force=force, deadline=deadline, ask=ask)
            for name, snap in sorted(todo.items())]


def concerns(rec: RunRecord, store: RunStore, max_age: float) -> list[str]:
    """Why rolling this run back may not be what the user wants: its age, and later runs on its hosts."""
    out = []
    age = (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(rec.started)).total_seconds()
    if age > max_age:
        out.append(f"its snapshot is {_duration(age)} old (more than --max-age {_duration(max_age)})")
    later = later_runs(rec, store)
    if later:
        out.append(f"later runs changed its hosts since: {', '.join(r.id for r in later[:5])} — rolling back "
                   "undoes those changes too")
    return out


def later_runs(rec: RunRecord, store: RunStore) -> list[RunRecord]:
    hosts = set(rec.sections.get("snapshots") or {})
    return [r for r in store.list(1000) if r.started > rec.started and not r.check_mode
            and r.sections.get("apply") and hosts & set(r.sections.get("hosts") or [])]


def _one(host: Host, rec: RunRecord, store: RunStore, snap: dict[str, Any], before: HostState, worries: list[str],
         *, accept_new: bool, rollback_packages: bool, force: bool, deadline: float, ask: Ask) -> RollbackReport:
    with host.connect(accept_new) as t, host_lock(t, f"rollback-{rec.id}"):
        _same_machine(t, rec, snap)
        if worries and not force:
            undo = snapshot_ops().diff(t, snap["id"])
            lines = [f"{host.name}: {w}" for w in worries]
            lines.append(f"{host.name}: it will put back {len(undo)} path(s): {', '.join(undo[:8]) or 'none'}")
            if not ask(lines):
                raise UsageError(f"rollback of run {rec.id} refused: {worries[0]}",
                                 "check with `safeapply show`, then re-run with --force")
        with armed_around(t, f"rollback-{rec.id}", snap["id"], deadline) as guard:
            ours, containers = attributed(host.name, [rec, *later_runs(rec, store)])
            report = rollback_host(t, snap["id"], before, snapshot_ops(), apt_offset=snap.get("apt_offset"),
                                   rollback_packages=rollback_packages, ours=ours, containers=containers)
            if files_restored(report):
                guard.verified()  # disarmed only now; else it stays armed and finishes the restore itself
        for note in guard.notes:
            if note.startswith("dead-man's switch still armed"):
                report.errors.append(note)
            elif not note.startswith("disarmed"):
                report.actions.append(note)
        return report


def attributed(host: str, runs: list[RunRecord]) -> tuple[frozenset[str] | None, frozenset[str] | None]:
    """The units and containers that the run and the later runs on the host (whose changes a rollback to this
    snapshot undoes too) name in their plans and task results; anything else since is someone else's and is
    left alone. (None, None): a run whose record has no plan for the host — every change then counts."""
    units: set[str] = set()
    containers: set[str] = set()
    for r in runs:
        expect = ((r.sections.get("plan") or {}).get("expect") or {}).get(host)
        if expect is None:
            if host in (r.sections.get("snapshots") or {}):
                return None, None
            continue  # a later run on other hosts only
        units.update(expect.get("units") or ())
        containers.update(expect.get("named_containers", expect.get("containers")) or ())
        containers.update(((r.sections.get("apply") or {}).get("containers") or {}).get(host) or ())
    return frozenset(units), frozenset(containers)


def _same_machine(t: Transport, rec: RunRecord, snap: dict[str, Any]) -> None:
    was, now = str(snap.get("machine_id") or ""), machine_id(t)
    if was and now != was:
        raise UsageError(f"{t.name} is not the machine run {rec.id} snapshotted (machine-id {now or 'none'}, "
                         f"expected {was})", "the inventory now points this name at another machine; nothing done")


def _duration(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    return f"{seconds:.0f} s"
