"""Take a snapshot: one scan on the host (which also keeps the on-target copy), then fetch only the blobs
the store lacks. A listing is the same scan without keeping anything: the state of a host, to compare."""

from __future__ import annotations

import datetime
import json
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from safeapply.errors import SnapshotError, UsageError
from safeapply.snapshot.manifest import Entry, Manifest
from safeapply.snapshot.remote import call, fetch
from safeapply.snapshot.retention import after_snapshot
from safeapply.snapshot.store import Store
from safeapply.target.layout import BASE as TARGET_BASE
from safeapply.transport.base import Transport

Progress = Callable[[str], None]
MAX_SKEW = 300  # seconds a manifest's creation time may differ from the controller's clock


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    host: str
    created: str
    roots: tuple[str, ...]
    files: int
    size: int
    new_blobs: int
    bytes_received: int
    bytes_sent: int
    unreadable: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def take(transport: Transport, roots: Sequence[str] = ("/etc",), store: Store | None = None,
         target_base: str = TARGET_BASE, progress: Progress | None = None) -> SnapshotInfo:
    """Snapshot `roots` on the host into `store` (default: state_dir()/snapshots) and keep a copy on the
    host under `target_base`. Raises SnapshotError (nothing is stored) or a transport error."""
    store = store or Store()
    say = progress or (lambda _msg: None)
    args = ["--base", target_base, "--host", transport.name, "--stream", *root_args(roots)]
    store.check_writable()  # before the host does any work or keeps a copy
    say(f"{transport.name}: scanning {', '.join(roots)}")
    known = store.latest_blobs(transport.name)
    request = b"".join(bytes.fromhex(h) for h in sorted(known))
    recs, received = fetch(transport, "scan", args, request)
    blobs = {name: data for tag, name, data in recs if tag == b"B"}
    packed = [data for tag, _name, data in recs if tag == b"M"]
    if len(packed) != 1:
        raise SnapshotError(f"{transport.name}: the snapshot stream carried no manifest")
    raw = _unpack(transport.name, packed[0])
    manifest = Manifest.parse(raw)
    check_origin(manifest, transport.name, roots)
    missing = sorted(h for h in manifest.blobs() - blobs.keys() if not store.has_blob(h))
    if missing:  # the store lost blobs since the last snapshot: fetch them from the on-target copy
        received += _fetch_missing(transport, target_base, missing, blobs)
    say(f"{transport.name}: {len(manifest.entries)} paths, {len(blobs)} new blobs, {received} bytes")
    store.save({h: d for h, d in blobs.items() if h in manifest.blobs()}, raw, transport.name)
    say(f"{transport.name}: snapshot {manifest.id}")
    for old in after_snapshot(store, transport.name):
        say(f"{transport.name}: pruned {old} (retention)")
    return SnapshotInfo(manifest.id, transport.name, manifest.created, manifest.roots, len(manifest.entries),
                        manifest.size, len(blobs), received, len(request), tuple(manifest.unreadable))


def check_origin(manifest: Manifest, host: str, roots: Sequence[str],
                 now: datetime.datetime | None = None) -> None:
    """The manifest a host sent is the one asked for: this host, these roots, made just now. A host that
    sends another host's header (to plant a snapshot for it) is refused: SnapshotError, nothing stored."""
    asked = tuple(os.path.normpath(r) for r in roots)
    if manifest.host != host:
        raise SnapshotError(f"{host}: refusing the snapshot: its manifest names host {manifest.host!r}",
                            "the host's safeapply program may be tampered with; look at the host")
    if manifest.roots != asked:
        raise SnapshotError(f"{host}: refusing the snapshot: its manifest covers {list(manifest.roots)}, "
                            f"not {list(asked)}", "the host's safeapply program may be tampered with")
    now = now or datetime.datetime.now(datetime.UTC)
    try:
        made = datetime.datetime.strptime(manifest.created, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        raise SnapshotError(f"{host}: refusing the snapshot: creation time {manifest.created!r} "
                            "is not a time") from None
    skew = (made.replace(tzinfo=datetime.UTC) - now).total_seconds()
    if abs(skew) > MAX_SKEW:
        raise SnapshotError(f"{host}: refusing the snapshot: made at {manifest.created}, {abs(skew):.0f} s "
                            f"{'ahead of' if skew > 0 else 'behind'} the controller's clock (limit {MAX_SKEW} s)",
                            "set the host's clock (NTP) and take it again")


def _fetch_missing(transport: Transport, base: str, missing: list[str], into: dict[str, bytes]) -> int:
    recs, size = fetch(transport, "send", ["--base", base], "\n".join(missing).encode())
    into.update((name, data) for tag, name, data in recs if tag == b"B")
    lost = sorted(set(missing) - into.keys())
    if lost:
        raise SnapshotError(f"{transport.name}: {len(lost)} blobs vanished from the on-target store "
                            f"{base} (first {lost[0][:12]})", "take the snapshot again")
    return size


def listing(transport: Transport, roots: Sequence[str] = ("/etc",)) -> dict[str, Entry]:
    """Content hash and metadata of every path under `roots` right now, keyed by path; nothing is kept.
    Entries look like a manifest's (type, mode, uid/gid, mtime, xattrs/ACLs, hash, link target)."""
    raw = _unpack(transport.name, call(transport, "scan", ["--host", transport.name, *root_args(roots)]))
    return {e["p"]: e for e in (json.loads(x) for x in raw.splitlines()[1:])}


def _unpack(host: str, packed: bytes) -> bytes:
    try:
        return zlib.decompress(packed)
    except zlib.error as e:
        raise SnapshotError(f"{host}: the manifest arrived damaged: {e}") from e


def root_args(roots: Sequence[str]) -> list[str]:
    """The target program's `--root` arguments; a relative root or one with '..' is a usage error."""
    out: list[str] = []
    for r in roots:
        if not r.startswith("/"):
            raise UsageError(f"snapshot root {r!r} is not an absolute path", "give it as /etc, /opt/app, ...")
        if ".." in r.split("/"):
            raise UsageError(f"snapshot root {r!r} contains '..'", "give the path without '..'")
        out += ["--root", r]
    return out
