"""The on-target blob store. Blobs live in append-once pack files (BASE/host-snapshots/packs/*.pack,
one per snapshot or delivery, records as in the byte stream) so a snapshot writes one file, not hundreds.
Every read is verified against the hash. Stdlib only."""

import contextlib
import fcntl
import hashlib
import json
import os
import struct
import time
from typing import Dict, FrozenSet, Iterator, List, Optional, Set, Tuple

from .. import layout
from .common import TMP_PREFIX, pack, private_dirs

KEEP = 20  # snapshots kept on each host; the controller's store keeps every one


def packs_dir(base: bytes) -> bytes:
    return layout.packs(base)


@contextlib.contextmanager
def store_lock(base: bytes) -> Iterator[None]:
    """One snapshot, restore or prune at a time under BASE/snapshots: a prune must never drop a pack that a
    snapshot in progress counts on, nor one a restore is reading."""
    d = layout.snapshots(base)
    private_dirs(d)
    fd = os.open(os.path.join(d, b".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def prune(base: bytes, keep: int = KEEP, pinned: FrozenSet[str] = frozenset()) -> int:
    """Drop all but the newest `keep` manifests and the `pinned` ones, then every
    pack none of the remaining manifests takes a blob from. Call it holding `store_lock`. Returns how many
    files went."""
    mdir = layout.manifests(base)
    names = [n for n in os.listdir(mdir) if n.endswith(b".jsonl")] if os.path.isdir(mdir) else []
    names.sort(key=lambda n: (os.stat(os.path.join(mdir, n)).st_mtime_ns, n))  # ids are per second only
    drop = [n for n in names[:-keep] if n[:-len(b".jsonl")].decode("utf-8", "replace") not in pinned]
    if not drop:
        return 0
    for n in drop:
        os.unlink(os.path.join(mdir, n))
    needed: Set[str] = set()
    for n in names:
        if n not in drop:
            with open(os.path.join(mdir, n), "rb") as f:
                needed.update(e["h"] for e in map(json.loads, f.read().splitlines()[1:]) if "h" in e)
    by_pack: Dict[bytes, Set[str]] = {}
    for h, places in Packs(base).where.items():
        for path, _off, _n in places:
            by_pack.setdefault(path, set()).add(h)
    unused = [path for path, hashes in by_pack.items() if not hashes & needed]
    for path in unused:
        os.unlink(path)
    return len(drop) + len(unused)


class Packs:
    """Where each blob is: hash -> [(pack file, offset, length)], read from the packs' record headers."""

    def __init__(self, base: bytes) -> None:
        self.where: Dict[str, List[Tuple[bytes, int, int]]] = {}
        d = packs_dir(base)
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if name.endswith(b".pack"):
                self._index(os.path.join(d, name))

    def _index(self, path: bytes) -> None:
        with open(path, "rb") as f, contextlib.suppress(struct.error, UnicodeDecodeError):
            while f.read(1) == b"B":
                (nlen,) = struct.unpack(">H", f.read(2))
                h = f.read(nlen).decode("ascii")
                (dlen,) = struct.unpack(">Q", f.read(8))
                self.where.setdefault(h, []).append((path, f.tell(), dlen))
                f.seek(dlen, 1)

    def __contains__(self, h: str) -> bool:
        return h in self.where

    def get(self, h: str) -> Optional[bytes]:
        """The blob's bytes from the first copy that verifies, or None."""
        for path, off, n in self.where.get(h, []):
            try:
                with open(path, "rb") as f:
                    f.seek(off)
                    data = f.read(n)
            except OSError:
                continue
            if hashlib.sha256(data).hexdigest() == h:
                return data
        return None


class PackWriter:
    """Collects new blobs into one temp pack; `files()` lists (temp, final) pairs to commit."""

    def __init__(self, base: bytes) -> None:
        self.dir = packs_dir(base)
        self.tmp: Optional[bytes] = None
        self.fd = -1
        self.added: Set[str] = set()

    def add(self, h: str, data: bytes) -> None:
        if h in self.added:
            return
        if self.tmp is None:
            private_dirs(self.dir)
            self.tmp = os.path.join(self.dir, TMP_PREFIX + os.urandom(6).hex().encode() + b".tmp")
            self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        rec = pack(b"B", h, data)
        view = memoryview(rec)
        while view:
            view = view[os.write(self.fd, view):]
        self.added.add(h)

    def files(self) -> List[Tuple[bytes, bytes]]:
        """Close the pack and hand it over: from now on the caller commits or removes it."""
        if self.tmp is None:
            return []
        os.close(self.fd)
        tmp, self.tmp, self.fd = self.tmp, None, -1
        name = b"%d-%s.pack" % (time.time_ns(), os.urandom(4).hex().encode())
        return [(tmp, os.path.join(self.dir, name))]

    def abort(self) -> None:
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
            self.tmp, self.fd = None, -1
