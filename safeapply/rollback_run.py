"""`safeapply rollback RUN`: return each host of a recorded run to its pre-run snapshot and scan."""

from __future__ import annotations

from safeapply.errors import UsageError
from safeapply.inventory import resolve_hosts
from safeapply.lock import host_lock
from safeapply.records import RunRecord
from safeapply.rollback import RollbackReport, rollback_host
from safeapply.run_stages import snapshot_ops
from safeapply.scan import HostState


def rollback_run(rec: RunRecord, accept_new: bool, rollback_packages: bool) -> list[RollbackReport]:
    """Each host of the run that has a snapshot and a pre-run scan, rolled back under its host lock."""
    snaps = rec.sections.get("snapshots") or {}
    scans = rec.sections.get("scans") or {}
    todo = {h: s for h, s in snaps.items() if s and s.get("id") and h in scans}
    if not todo:
        raise UsageError(f"run {rec.id} has no snapshot to return to", "it stopped before taking one")
    hosts = {h.name: h for h in resolve_hosts(list(rec.sections.get("inventory") or []), "all")}
    reports = []
    for name, snap in sorted(todo.items()):
        if name not in hosts:
            raise UsageError(f"host {name} of run {rec.id} is not in its inventory any more")
        with hosts[name].connect(accept_new) as t, host_lock(t, f"rollback-{rec.id}"):
            reports.append(rollback_host(t, snap["id"], HostState.from_dict(scans[name]), snapshot_ops(),
                                         apt_offset=snap.get("apt_offset"),
                                         rollback_packages=rollback_packages))
    return reports
