"""One walk over the roots -> manifest entries; optionally keeps each file's blob in the
on-target store (so the host can restore itself without the controller). Stdlib only."""

import base64
import errno
import grp
import hashlib
import os
import pwd
import stat
from typing import BinaryIO, Callable, Dict, Iterator, List, Optional, Set, Tuple

from ..errors import TargetError
from .common import CHUNK, Entry, dec, enc, pack
from .packs import Packs, PackWriter

KIND = {stat.S_IFDIR: "d", stat.S_IFREG: "f", stat.S_IFLNK: "l", stat.S_IFIFO: "p", stat.S_IFSOCK: "s",
        stat.S_IFCHR: "c", stat.S_IFBLK: "b"}
INLINE_MAX = 16 << 20
_names: Dict[Tuple[str, int], str] = {}


def owner_name(kind: str, num: int) -> str:
    key = (kind, num)
    if key not in _names:
        try:
            _names[key] = pwd.getpwuid(num).pw_name if kind == "u" else grp.getgrgid(num).gr_name
        except KeyError:
            _names[key] = ""
    return _names[key]


def xattrs(path: bytes) -> Dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in sorted(names):
        try:
            out[name] = base64.b64encode(os.getxattr(path, name, follow_symlinks=False)).decode()
        except OSError:
            continue
    return out


def walk(root: bytes, skip: Optional[bytes]) -> Iterator[Tuple[bytes, os.stat_result]]:
    """Parents before children, names in byte order, never following a symlink, never leaving a root."""
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        return
    yield root, st
    if not stat.S_ISDIR(st.st_mode):
        return
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        subdirs = []
        for name in names:
            p = os.path.join(d, name)
            if skip is not None and (p == skip or p.startswith(skip + b"/")):
                continue
            st = os.lstat(p)
            yield p, st
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(p)
        stack.extend(reversed(subdirs))


def entry(path: bytes, st: os.stat_result) -> Entry:
    e: Entry = {"p": dec(path), "t": KIND.get(stat.S_IFMT(st.st_mode), "?"), "m": stat.S_IMODE(st.st_mode),
                "u": st.st_uid, "g": st.st_gid, "un": owner_name("u", st.st_uid), "gn": owner_name("g", st.st_gid),
                "mt": st.st_mtime_ns, "x": xattrs(path)}
    if e["t"] == "l":
        e["l"] = dec(os.readlink(path))
    elif e["t"] in ("c", "b"):
        e["rd"] = st.st_rdev
    elif e["t"] == "f":
        e["sz"] = st.st_size
    return e


class Hasher:
    """Hashes regular files; streams blobs the controller lacks to `out`; adds blobs the on-target store
    lacks to `writer` (one pack file per snapshot)."""

    def __init__(self, writer: Optional[PackWriter] = None, have: Optional[Packs] = None,
                 out: Optional[BinaryIO] = None, known: Optional[Set[str]] = None) -> None:
        self.writer, self.have, self.out = writer, have, out
        self.known = known or set()
        self.seen: Set[str] = set()

    def file(self, path: bytes, st: os.stat_result) -> str:
        """Hash the regular file the walk's lstat `st` saw at `path`. Opened without following a symlink and
        checked (fstat against the lstat) to be that very file: an account that swaps in a symlink to a
        root-only file between the two gets an error entry, never that file's content under its own path."""
        fd = open_same(path, st)
        with os.fdopen(fd, "rb", buffering=0) as f:
            if st.st_size <= INLINE_MAX:
                data = f.read()
                h = hashlib.sha256(data).hexdigest()
                self._keep(h, lambda: data)
                return h
            h = _hash_big(f)
            self._keep(h, lambda: _read_checked(f, h))
            return h

    def _keep(self, h: str, data: Callable[[], bytes]) -> None:
        if h in self.seen:
            return
        self.seen.add(h)
        if self.out is not None and h not in self.known:
            self.out.write(pack(b"B", h, data()))
        if self.writer is None or (self.have is not None and h in self.have):
            return
        try:
            self.writer.add(h, data())
        except OSError as e:
            where = dec(self.writer.dir)
            raise TargetError("store", f"cannot write the on-target copy under {where}: {e.strerror or e}") from e


def open_same(path: bytes, st: os.stat_result) -> int:
    """A read-only fd of the regular file whose lstat was `st`, or OSError: never through a symlink (O_NOFOLLOW),
    never a fifo or device swapped in (O_NONBLOCK, then fstat compared with the lstat)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise OSError(errno.ESTALE, "replaced while being read")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _hash_big(f: BinaryIO) -> str:
    h = hashlib.sha256()
    while chunk := f.read(CHUNK):
        h.update(chunk)
    return h.hexdigest()


def _read_checked(f: BinaryIO, h: str) -> bytes:
    f.seek(0)
    data = f.read()
    if hashlib.sha256(data).hexdigest() != h:
        raise OSError("changed while being read")
    return data


def scan(roots: List[bytes], hasher: Hasher, skip: Optional[bytes] = None, inodes: bool = False) -> Iterator[Entry]:
    """Manifest entries for every path under the roots; hard links point at the first name of the inode."""
    leaders: Dict[Tuple[int, int], str] = {}
    for root in roots:
        for path, st in walk(root, skip):
            e = entry(path, st)
            if e["t"] == "f":
                key = (st.st_dev, st.st_ino)
                if inodes:
                    e["i"] = f"{key[0]}:{key[1]}"
                if st.st_nlink > 1 and key in leaders:
                    e["lk"] = leaders[key]
                elif st.st_nlink > 1:
                    leaders[key] = e["p"]
                try:
                    e["h"] = hasher.file(path, st)
                except OSError as err:
                    e["err"] = err.strerror or str(err)
            yield e


def parse_roots(roots: List[str]) -> List[bytes]:
    return [os.path.normpath(enc(r)) for r in roots]
