"""Checks that run before a restore changes anything, and parent-directory handles that never
follow a symlink. Stdlib only."""

import os
from typing import Dict, List, Tuple

from ..errors import TargetError
from .common import Entry, enc
from .packs import Packs


def check_path(p: str, roots: List[bytes]) -> bytes:
    """An absolute, normalised path inside one of the roots, or a TargetError."""
    b = enc(p)
    parts = b.split(b"/")
    if not b.startswith(b"/") or b"\0" in b or any(x in (b"", b".", b"..") for x in parts[1:]):
        raise TargetError("unsafe", f"manifest path {p!r} is not a clean absolute path")
    if not any(b == r or b.startswith(r.rstrip(b"/") + b"/") for r in roots):
        raise TargetError("unsafe", f"manifest path {p!r} is outside the snapshot's roots")
    return b


def check_manifest(roots: List[bytes], entries: List[Entry]) -> None:
    """Every path clean and inside a root; every parent a directory of the manifest (no symlink escapes)."""
    for r in roots:
        check_path(r.decode("utf-8", "surrogateescape"), [r])
    kinds: Dict[bytes, str] = {}
    for e in entries:
        b = check_path(e["p"], roots)
        if b in kinds:
            raise TargetError("unsafe", "manifest lists {!r} twice".format(e["p"]))
        if b not in roots and kinds.get(os.path.dirname(b)) != "d":
            raise TargetError("unsafe", "manifest path {!r} has no directory parent in the snapshot".format(e["p"]))
        if e["t"] not in ("d", "f", "l", "p", "s", "c", "b"):
            raise TargetError("unsafe", "manifest entry {!r} has unknown type {!r}".format(e["p"], e["t"]))
        if "lk" in e and kinds.get(check_path(e["lk"], roots)) != "f":
            raise TargetError("unsafe", "hard link {!r} points at {!r}, not an earlier file".format(e["p"], e["lk"]))
        kinds[b] = e["t"]


def verify_blobs(packs: Packs, entries: List[Entry]) -> List[str]:
    """Blobs the restore needs that are missing or do not hash to their name. Checked before any change."""
    needed = {e["h"] for e in entries if e["t"] == "f" and "h" in e and "err" not in e}
    return sorted(h for h in needed if packs.get(h) is None)


class Dirs:
    """Open directory handles, walked down from / one component at a time with O_NOFOLLOW."""

    FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

    def __init__(self) -> None:
        self.fds: Dict[bytes, int] = {}

    def fd(self, path: bytes) -> int:
        if path in self.fds:
            return self.fds[path]
        if path == b"/":
            fd = os.open(b"/", self.FLAGS)
        else:
            parent = self.fd(os.path.dirname(path))
            try:
                fd = os.open(os.path.basename(path), self.FLAGS, dir_fd=parent)
            except OSError as e:
                shown = path.decode("utf-8", "replace")
                raise TargetError("unsafe", f"refusing {shown!r}: {e.strerror} (a symlink or not a directory)") from e
        self.fds[path] = fd
        return fd

    def at(self, path: bytes) -> Tuple[int, bytes]:
        """(handle of the parent directory, last component) for use with dir_fd= calls."""
        return self.fd(os.path.dirname(path)), os.path.basename(path)

    def trim(self) -> None:
        """Between operations (never inside one, which may hold two handles): bound the open handles."""
        if len(self.fds) > 400:
            self.clear()

    def clear(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()
