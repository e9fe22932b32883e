"""Restore a host to a snapshot: verify the manifest and blobs here, send the target what it lacks, and
run the same restore the host runs to restore itself (BASE/bin/safeapply-restore.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from safeapply.errors import SnapshotError
from safeapply.snapshot.capture import Progress
from safeapply.snapshot.remote import call, stream_of
from safeapply.snapshot.store import Store
from safeapply.target.layout import BASE as TARGET_BASE
from safeapply.transport.base import Transport


@dataclass(frozen=True)
class RestoreReport:
    host: str
    snapshot: str
    changes: tuple[dict[str, str], ...]
    interrupted: dict[str, object] | None = None  # an interrupted restore this one found (and completed)

    @property
    def changed(self) -> bool:
        return any(c["action"] != "skipped" for c in self.changes)

    def as_dict(self) -> dict[str, object]:
        return {"host": self.host, "snapshot": self.snapshot, "changed": self.changed, "changes": list(self.changes),
                "interrupted": self.interrupted}


def restore(transport: Transport, snapshot_id: str, store: Store | None = None,
            target_base: str = TARGET_BASE, progress: Progress | None = None) -> RestoreReport:
    """Put the snapshot's roots back on the host exactly. Everything is verified before the first change;
    a restore of an unchanged host changes nothing. Raises UsageError (unknown id) or SnapshotError."""
    store = store or Store()
    say = progress or (lambda _msg: None)
    with store.reading():  # the retention leaves this snapshot alone meanwhile
        manifest = store.load(snapshot_id)
        blobs = sorted(manifest.blobs())
        for h in blobs:
            store.get_blob(h)  # verify every blob before touching the host
        args = ["--base", target_base, "--id", snapshot_id, "--stdin"]
        say(f"{transport.name}: restoring {', '.join(manifest.roots)} to {snapshot_id}")
        out = call(transport, "restore", args, stdin=stream_of([(b"M", snapshot_id, manifest.raw)]).getvalue())
        need = json.loads(out).get("need")
        if need:  # the host's own copy lacks blobs: send them, then restore (nothing was changed yet)
            say(f"{transport.name}: sending {len(need)} blobs the host lacks")
            items = [(b"M", snapshot_id, manifest.raw)] + [(b"B", h, store.get_blob(h)) for h in need]
            out = call(transport, "restore", args, stdin=stream_of(items).getvalue())
    report = json.loads(out)
    if "need" in report:
        raise SnapshotError(f"{transport.name}: blobs still missing after sending them: {report['need'][:3]}")
    say(f"{transport.name}: {len(report['changes'])} changes")
    return RestoreReport(transport.name, snapshot_id, tuple(report["changes"]), report.get("interrupted"))
