"""The controller's store: SHA-256 blobs written once (temp, one sync, rename) and verified on every read;
blobs shared across snapshots and hosts; manifests kept per host (manifests/HOST/ID.jsonl, HOST as the
controller names it, never as the manifest's header says), so one host's manifest is never another's "latest".
Manifests of older versions (manifests/ID.jsonl) are listed and loadable by id, never a host's "latest".
Directories 0700, files 0600."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from safeapply.config import file_name, private_dir, state_dir
from safeapply.errors import SnapshotError, UsageError
from safeapply.snapshot.manifest import Manifest
from safeapply.target.snapshot.common import snapshot_id, sync_fs


@dataclass(frozen=True)
class Summary:
    id: str
    host: str
    created: str
    files: int
    size: int


class Store:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or state_dir() / "snapshots"

    def blob_path(self, h: str) -> Path:
        return self.root / "blobs" / "sha256" / h[:2] / h

    def has_blob(self, h: str) -> bool:
        return self.blob_path(h).exists()

    def get_blob(self, h: str) -> bytes:
        try:
            data = self.blob_path(h).read_bytes()
        except OSError as e:
            raise SnapshotError(f"blob {h[:12]} is missing from the store {self.root}: {e.strerror}") from e
        if hashlib.sha256(data).hexdigest() != h:
            raise SnapshotError(f"blob {h[:12]} in {self.root} is corrupt (hash mismatch); take a new snapshot")
        return data

    def put_blobs(self, blobs: dict[str, bytes]) -> None:
        """Write verified blobs all-or-nothing: temps, one sync, renames."""
        self.save(blobs, None)

    def save_manifest(self, raw: bytes, host: str | None = None) -> str:
        """A manifest the controller vouches for; `host` defaults to its header's."""
        return self.save({}, raw, host if host is not None else Manifest.parse(raw).host)

    def host_dir(self, host: str) -> Path:
        """manifests/HOST: quoted so that every host name has its own directory ('.', '/', '%' included)."""
        return self.root / "manifests" / file_name(host)

    def save(self, blobs: dict[str, bytes], manifest: bytes | None, host: str = "") -> str:
        """Blobs, then the manifest that needs them (kept under `host`, the host the controller asked), with
        one sync: a snapshot exists only once complete. Returns the snapshot id (or "" without a manifest).
        Any failure leaves no temp file behind."""
        pending: list[tuple[Path, Path]] = []
        sid = snapshot_id(manifest) if manifest is not None else ""
        if manifest is not None and not host:
            raise SnapshotError(f"snapshot {sid}: no host to keep it under")
        with self._locked(fcntl.LOCK_SH):
            if manifest is not None and (lost := [h for h in Manifest.parse(manifest).blobs()
                                                  if h not in blobs and not self.has_blob(h)]):
                raise SnapshotError(f"snapshot {sid}: {len(lost)} blob(s) it shares with an earlier snapshot were "
                                    "pruned meanwhile", "take the snapshot again")
            return self._save(blobs, manifest, host, sid, pending)

    def _save(self, blobs: dict[str, bytes], manifest: bytes | None, host: str, sid: str,
              pending: list[tuple[Path, Path]]) -> str:
        try:
            for h, data in blobs.items():
                if hashlib.sha256(data).hexdigest() != h:
                    raise SnapshotError(f"blob {h[:12]} arrived corrupt (hash mismatch)")
                final = self.blob_path(h)
                if not final.exists():
                    pending.append((self._temp(final, data), final))
            if manifest is not None:
                final = self.host_dir(host) / f"{sid}.jsonl"
                pending.append((self._temp(final, manifest), final))
            self._commit(pending)
        except OSError as e:
            raise self._unwritable(e) from e
        finally:
            for tmp, _ in pending:
                tmp.unlink(missing_ok=True)
        return sid

    def check_writable(self) -> None:
        """Fail before any work on a host when the store cannot take a snapshot (state dir a file, read-only)."""
        try:
            self._mkdirs(self.root / "manifests")
            os.close(os.open(self.root / "manifests", os.O_RDONLY | os.O_DIRECTORY))
            if not os.access(self.root / "manifests", os.W_OK):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        except OSError as e:
            raise self._unwritable(e) from e

    def _unwritable(self, e: OSError) -> SnapshotError:
        full = e.errno in (errno.ENOSPC, errno.EDQUOT)
        return SnapshotError(f"cannot write to the snapshot store {self.root}: {e.strerror}",
                             "free some space or run `safeapply prune`" if full
                             else "point SAFEAPPLY_STATE_DIR at a writable directory")

    def _mkdirs(self, d: Path) -> None:
        """Every level from the store root down is 0700 (mkdir's parents= would use the umask)."""
        private_dir(self.root)
        cur = self.root
        for part in d.relative_to(self.root).parts:
            cur = cur / part
            if not cur.is_dir():
                private_dir(cur)

    def _temp(self, final: Path, data: bytes) -> Path:
        self._mkdirs(final.parent)
        tmp = final.parent / f".tmp-{os.getpid()}-{os.urandom(4).hex()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def _commit(self, pending: list[tuple[Path, Path]]) -> None:
        if pending:
            sync_fs(bytes(self.root))
        while pending:
            tmp, final = pending.pop(0)
            tmp.rename(final)

    def _index(self) -> dict[str, tuple[str | None, Path]]:
        """id -> (the host it was kept under, or None for an older version's manifest; its path)."""
        d = self.root / "manifests"
        out: dict[str, tuple[str | None, Path]] = {}
        if not d.exists():
            return out
        for p in d.glob("*.jsonl"):
            out[p.name[:-6]] = (None, p)
        for p in d.glob("*/*.jsonl"):
            out[p.name[:-6]] = (urllib.parse.unquote(p.parent.name), p)
        return out

    def load(self, sid: str) -> Manifest:
        found = self._index().get(sid) if "/" not in sid else None
        if found is None:
            raise UsageError(f"unknown snapshot {sid!r}", "list them with `safeapply snapshots`")
        return Manifest.parse(found[1].read_bytes(), sid)

    def ids(self) -> list[str]:
        return sorted(self._index())

    def summaries(self, host: str | None = None) -> list[Summary]:
        """Every snapshot, or HOST's: only those kept under HOST whose header names HOST too."""
        out = []
        for sid, (owner, _path) in sorted(self._index().items()):
            if host is not None and owner != host:
                continue
            m = self.load(sid)
            if host is None or m.host == host:
                out.append(Summary(sid, owner if owner is not None else m.host, m.created, len(m.entries), m.size))
        return sorted(out, key=lambda s: (s.created, s.id))

    def latest_blobs(self, host: str) -> set[str]:
        """Blobs of the host's newest snapshot that the store holds: what a new snapshot need not send."""
        for sid, (owner, _path) in sorted(self._index().items(), reverse=True):
            if owner != host:
                continue
            try:
                m = self.load(sid)
            except SnapshotError:
                continue
            if m.host == host:
                return {h for h in m.blobs() if self.has_blob(h)}
        return set()

    def resolve(self, host: str, ref: str | None) -> str:
        """`latest` (or None), a full id, or a unique prefix of one of HOST's snapshots."""
        mine = [s.id for s in self.summaries(host)]
        if not mine:
            raise UsageError(f"no snapshot of {host} in {self.root}", f"take one with `safeapply snapshot {host}`")
        if ref in (None, "latest"):
            return mine[-1]
        hits = [s for s in mine if s == ref] or [s for s in mine if s.startswith(ref or "")]
        if len(hits) != 1:
            raise UsageError(f"unknown snapshot {ref!r} for {host}" if not hits else f"{ref!r} is ambiguous",
                             "list them with `safeapply snapshots`")
        return hits[0]

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Held by a restore or diff while it reads a snapshot: the retention's prune leaves the store alone.
        A store whose lock file cannot be opened (read-only) is read without it: nothing prunes it either."""
        try:
            fd = os.open(self.root / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        except OSError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _locked(self, how: int, wait: bool = True) -> Iterator[bool]:
        """Saves share the store; prune and gc have it alone (a blob a save is about to refer to must stay).
        With wait=False (how has LOCK_NB) it yields False instead of waiting when another process holds it."""
        try:
            private_dir(self.root)
            fd = os.open(self.root / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        except OSError as e:
            raise self._unwritable(e) from e
        try:
            try:
                fcntl.flock(fd, how)
            except BlockingIOError:
                if wait:
                    raise
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def prune(self, keep: int) -> tuple[list[str], int]:
        """Keep the newest `keep` snapshots per host; drop the rest and blobs nothing refers to."""
        with self._locked(fcntl.LOCK_EX):
            return self._prune(keep)

    def _prune(self, keep: int) -> tuple[list[str], int]:
        by_host: dict[str, list[str]] = {}
        for s in self.summaries():
            by_host.setdefault(s.host, []).append(s.id)
        gone = [sid for ids in by_host.values() for sid in ids[: max(0, len(ids) - keep)]]
        index = self._index()
        for sid in gone:
            index[sid][1].unlink()
        return gone, self._gc()

    def count(self, host: str) -> int:
        """How many snapshots are kept under HOST (a directory listing: nothing is read)."""
        d = self.host_dir(host)
        return sum(1 for _ in d.glob("*.jsonl")) if d.is_dir() else 0

    def prune_host(self, host: str, keep: int, needed: set[str]) -> list[str]:
        """The retention's prune: HOST's snapshots beyond the newest `keep`, except those in `needed`, then the
        blobs nothing refers to. Only when the store is free at once (a save, restore or diff holds it
        shared); otherwise nothing, and the next snapshot tries again."""
        with self._locked(fcntl.LOCK_EX | fcntl.LOCK_NB, wait=False) as free:
            if not free:
                return []
            ids = [s.id for s in self.summaries(host)]
            gone = [sid for sid in ids[: max(0, len(ids) - keep)] if sid not in needed]
            for sid in gone:
                (self.host_dir(host) / f"{sid}.jsonl").unlink()
            if gone:
                self._gc()
            return gone

    def gc(self) -> int:
        with self._locked(fcntl.LOCK_EX):
            return self._gc()

    def _gc(self) -> int:
        live: set[str] = set()
        for sid in self.ids():
            live |= self.load(sid).blobs()
        freed = 0
        for p in (self.root / "blobs" / "sha256").glob("*/*"):
            if p.name not in live:
                freed += p.stat().st_size
                p.unlink()
        return freed
