"""The controller's default retention: after each snapshot, a host keeps its newest `keep_snapshots`
snapshots (safeapply.toml or SAFEAPPLY_KEEP_SNAPSHOTS; 0 keeps every one), plus every snapshot a run started
within `rollback RUN`'s max age names (what `safeapply rollback RUN` and a run's switch confirmation read).
Cheap: nothing is read unless the host is over the limit; a prune that cannot have the store at once (another
process is saving or restoring from it) is left to the next snapshot."""

from __future__ import annotations

import datetime as dt

from safeapply.errors import SafeapplyError
from safeapply.snapshot.store import Store

RECENT = 24 * 3600.0  # seconds: `safeapply rollback RUN`'s default --max-age (safeapply.rollback_run uses this)


def keep_count() -> int:
    """SAFEAPPLY_KEEP_SNAPSHOTS, else safeapply.toml's keep_snapshots, else 10."""
    from safeapply import project_config

    return int(project_config.setting("keep_snapshots"))


def needed_by_recent_runs(host: str) -> set[str]:
    """Snapshot ids of HOST that runs started within rollback's default max age recorded."""
    from safeapply.records import RunStore

    since = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=RECENT)).isoformat(timespec="seconds")
    out = set()
    for rec in RunStore().started_since(since):
        snap = (rec.sections.get("snapshots") or {}).get(host)
        if isinstance(snap, dict) and isinstance(snap.get("id"), str):
            out.add(snap["id"])
    return out


def after_snapshot(store: Store, host: str) -> list[str]:
    """Apply the retention to HOST; the ids removed. Never fails the snapshot: a problem leaves all in place."""
    try:
        keep = keep_count()
        if keep == 0 or store.count(host) <= keep:
            return []
        return store.prune_host(host, keep, needed_by_recent_runs(host))
    except (SafeapplyError, OSError):
        return []
