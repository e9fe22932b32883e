"""Put the roots back to a manifest.

Order keeps a failure harmless: (1) every new content goes to a temp file beside its target; a failure
(disk full) removes the temps and nothing has changed; (2) one sync, then removals, directories, renames,
hard links; (3) metadata, directories last and deepest first so their mtimes stick.
"""

import base64
import contextlib
import errno
import os
import stat
from typing import Dict, FrozenSet, List, Optional, Set, Tuple, Union

from ..errors import TargetError
from .common import TMP_PREFIX, Entry, enc, sync_fs
from .packs import Packs
from .safety import Dirs

IFMT = {"f": stat.S_IFREG, "p": stat.S_IFIFO, "s": stat.S_IFSOCK, "c": stat.S_IFCHR, "b": stat.S_IFBLK}


def same_meta(cur: Entry, want: Entry) -> bool:
    keys = ("u", "g", "mt", "x") if want["t"] == "l" else ("u", "g", "m", "mt", "x")
    return all(cur.get(k) == want.get(k) for k in keys)


def same_node(cur: Optional[Entry], want: Entry) -> bool:
    """Same type and content (metadata aside)."""
    if cur is None or cur["t"] != want["t"]:
        return False
    return all(cur.get(k) == want.get(k) for k in ("h", "l", "rd"))


class Restorer:
    def __init__(self, packs: Packs, roots: List[bytes], want: List[Entry], cur: Dict[str, Entry]) -> None:
        self.packs, self.want, self.cur = packs, want, cur
        self.roots = {r.decode("utf-8", "surrogateescape") for r in roots}
        self.before = set(cur)
        self.wanted = {e["p"]: e for e in want}
        self.dirs = Dirs()
        self.changes: List[Dict[str, str]] = []
        self.temps: List[Tuple[bytes, Entry]] = []
        self.fresh: Set[str] = set()
        self.groups = _want_groups(want)
        self.cur_groups = _cur_groups(cur, self.wanted)

    def note(self, e: Union[Entry, str], action: str, detail: str = "") -> None:
        self.changes.append({"path": e if isinstance(e, str) else e["p"], "action": action, "detail": detail})

    def run(self) -> List[Dict[str, str]]:
        try:
            try:
                self.stage_new_content(parents_ready=False)
            except OSError as e:
                raise TargetError("space", f"cannot stage new files ({e.strerror}: {_name(e)}); "
                                  "nothing was changed") from e
            try:
                self.change()
            except OSError as e:
                raise TargetError("partial", f"restore stopped after {len(self.changes)} changes: "
                                  f"{e.strerror}: {_name(e)}; run it again or look at the host") from e
        finally:
            self.drop_temps()
            self.dirs.clear()
        return self.changes

    def change(self) -> None:
        self.remove_extra()
        self.make_dirs()
        self.stage_new_content(parents_ready=True)
        for root in sorted(self.roots):  # temps must be durable before they replace anything
            top = enc(root) if os.path.isdir(enc(root)) else os.path.dirname(enc(root))
            sync_fs(top)
        self.commit_temps()
        self.relink()
        self.fix_metadata()

    def unchanged(self, e: Entry) -> bool:
        cur = self.cur.get(e["p"])
        if not same_node(cur, e):
            return False
        return e["t"] != "f" or self.cur_groups.get(e["p"]) == self.groups.get(e["p"])

    # -- phase 1: temps --------------------------------------------------------------------------------
    def stage_new_content(self, parents_ready: bool) -> None:
        staged = {e["p"] for _t, e in self.temps}
        for e in self.want:
            self.dirs.trim()
            if e["t"] == "d" or "lk" in e or e["p"] in staged or self.unchanged(e):
                continue
            if "err" in e:
                if not parents_ready:
                    self.note(e, "skipped", "unreadable when the snapshot was taken")
                continue
            b = enc(e["p"])
            parent = self.cur.get(os.path.dirname(b).decode("utf-8", "surrogateescape"))
            in_place = parent is not None and parent["t"] == "d"
            root_ok = e["p"] in self.roots and os.path.isdir(os.path.dirname(b))
            if not parents_ready and not in_place and not root_ok:
                continue
            self.temps.append((self.make_temp(b, e), e))

    def make_temp(self, b: bytes, e: Entry) -> bytes:
        dfd, _name = self.dirs.at(b)
        tmp = TMP_PREFIX + os.urandom(6).hex().encode() + b".tmp"
        if e["t"] == "l":
            os.symlink(enc(e["l"]), tmp, dir_fd=dfd)
        elif e["t"] == "f":
            self._write_blob(dfd, tmp, e["h"])
        else:
            os.mknod(tmp, IFMT[e["t"]] | 0o600, e.get("rd", 0), dir_fd=dfd)
        try:
            set_meta(dfd, tmp, e, owner_changed=True)
        except BaseException:
            os.unlink(tmp, dir_fd=dfd)
            raise
        return os.path.join(os.path.dirname(b), tmp)

    def _write_blob(self, dfd: int, tmp: bytes, h: str) -> None:
        data = self.packs.get(h)
        if data is None:
            raise TargetError("corrupt", f"blob {h} went missing or corrupt during the restore")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dfd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except BaseException:
            os.unlink(tmp, dir_fd=dfd)
            raise
        finally:
            os.close(fd)

    def drop_temps(self) -> None:
        for tmp, _e in self.temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self.temps.clear()

    # -- phase 2: structure ----------------------------------------------------------------------------
    def remove_extra(self) -> None:
        for p in sorted(self.cur, key=enc, reverse=True):
            self.dirs.trim()
            c, w = self.cur[p], self.wanted.get(p)
            if w is not None and (c["t"] == "d") == (w["t"] == "d"):
                continue
            dfd, name = self.dirs.at(enc(p))
            if c["t"] == "d":
                os.rmdir(name, dir_fd=dfd)
            else:
                os.unlink(name, dir_fd=dfd)
            self.cur.pop(p)
            if w is None:
                self.note(p, "removed", "created after the snapshot")
        self.dirs.clear()  # a handle may name a directory that is gone now

    def make_dirs(self) -> None:
        for e in self.want:
            self.dirs.trim()
            if e["t"] == "d" and e["p"] not in self.cur:
                dfd, name = self.dirs.at(enc(e["p"]))
                os.mkdir(name, 0o700, dir_fd=dfd)
                self.note(e, "created", "directory")

    def commit_temps(self) -> None:
        for tmp, e in self.temps:
            self.dirs.trim()
            dfd, name = self.dirs.at(enc(e["p"]))
            try:
                os.rename(os.path.basename(tmp), name, src_dir_fd=dfd, dst_dir_fd=dfd)
                self.fresh.add(e["p"])
            except OSError as err:
                if err.errno != errno.EBUSY or e["t"] != "f":
                    raise
                _overwrite(dfd, os.path.basename(tmp), name)  # a bind-mounted file: keep the mount
            self.note(e, "replaced" if e["p"] in self.before else "created", _kind(e))
        self.temps.clear()

    def relink(self) -> None:
        for e in self.want:
            if "lk" not in e:
                continue
            self.dirs.trim()
            ldfd, lname = self.dirs.at(enc(e["lk"]))
            lead = os.lstat(lname, dir_fd=ldfd)
            dfd, name = self.dirs.at(enc(e["p"]))
            try:
                if os.lstat(name, dir_fd=dfd).st_ino == lead.st_ino:
                    continue
            except FileNotFoundError:
                pass
            tmp = TMP_PREFIX + os.urandom(6).hex().encode() + b".tmp"
            os.link(lname, tmp, src_dir_fd=ldfd, dst_dir_fd=dfd, follow_symlinks=False)
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            self.fresh.add(e["p"])
            self.note(e, "relinked", "hard link to " + e["lk"])

    # -- phase 3: metadata -----------------------------------------------------------------------------
    def fix_metadata(self) -> None:
        from .scan import entry

        files = [e for e in self.want if e["t"] != "d" and "lk" not in e and e["p"] not in self.fresh]
        dirs = sorted((e for e in self.want if e["t"] == "d"), key=lambda e: enc(e["p"]), reverse=True)
        for e in files + dirs:
            self.dirs.trim()
            if "err" in e:
                continue
            b = enc(e["p"])
            dfd, name = self.dirs.at(b)
            seen = os.lstat(name, dir_fd=dfd)
            cur = entry(b, seen)
            if not same_meta(cur, e):
                set_meta(dfd, name, e, owner_changed=(cur["u"], cur["g"]) != (e["u"], e["g"]), cur=cur, seen=seen)
                if e["p"] in self.before:
                    self.note(e, "metadata", _meta_diff(cur, e))


def set_meta(dfd: int, name: bytes, e: Entry, owner_changed: bool, cur: Optional[Entry] = None,
             seen: Optional[os.stat_result] = None) -> None:
    """Owner first (chown clears setuid and capabilities), then xattrs and ACLs, then mode, then mtime.
    Everything but a symlink's metadata goes through one handle of the node itself, opened without following
    a symlink and checked against `seen` (the lstat the decision was made on) and the wanted type: an account
    that swaps a symlink (or anything else) in between makes the restore stop, never chmod another file."""
    if e["t"] == "l":
        if owner_changed:
            os.chown(name, e["u"], e["g"], dir_fd=dfd, follow_symlinks=False)
        _set_xattrs(b"/proc/self/fd/%d/%s" % (dfd, name), e, cur, owner_changed, follow=False)
        os.utime(name, ns=(e["mt"], e["mt"]), dir_fd=dfd, follow_symlinks=False)
        return
    fd = open_node(dfd, name, e, seen)
    try:
        proc = b"/proc/self/fd/%d" % fd  # the very inode, whatever happens to the name meanwhile
        if owner_changed:
            os.chown(proc, e["u"], e["g"])
        _set_xattrs(proc, e, cur, owner_changed, follow=True)
        have = {} if cur is None or owner_changed else cur["x"]
        if cur is None or owner_changed or e["x"] != have or cur["m"] != e["m"]:
            os.chmod(proc, e["m"])
        os.utime(proc, ns=(e["mt"], e["mt"]))
    finally:
        os.close(fd)


def open_node(dfd: int, name: bytes, e: Entry, seen: Optional[os.stat_result]) -> int:
    """An O_PATH handle of `name` itself (never a symlink's target), of the wanted type and, given `seen`, the
    same inode: else OSError (ELOOP for a symlink, ESTALE for a swap)."""
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    try:
        now = os.fstat(fd)
        if stat.S_ISLNK(now.st_mode):
            raise OSError(errno.ELOOP, "a symlink appeared during the restore", name)
        want = stat.S_IFDIR if e["t"] == "d" else IFMT[e["t"]]
        moved = seen is not None and (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino)
        if stat.S_IFMT(now.st_mode) != want or moved:
            raise OSError(errno.ESTALE, "replaced during the restore", name)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _set_xattrs(proc: bytes, e: Entry, cur: Optional[Entry], owner_changed: bool, follow: bool) -> None:
    """`follow`: `proc` is /proc/self/fd/N, a link to the node itself; else a path whose last part is it."""
    have = {} if cur is None or owner_changed else cur["x"]
    for k in os.listxattr(proc, follow_symlinks=follow):
        if k not in e["x"]:
            os.removexattr(proc, k, follow_symlinks=follow)  # e.g. an ACL inherited from a default ACL
    for k, v in e["x"].items():
        if have.get(k) != v:
            os.setxattr(proc, k, base64.b64decode(v), follow_symlinks=follow)


def _want_groups(want: List[Entry]) -> Dict[str, FrozenSet[str]]:
    members: Dict[str, Set[str]] = {}
    for e in want:
        if e["t"] == "f":
            members.setdefault(str(e.get("lk", e["p"])), set()).add(e["p"])
    return {p: frozenset(g) for g in members.values() for p in g}


def _cur_groups(cur: Dict[str, Entry], wanted: Dict[str, Entry]) -> Dict[str, FrozenSet[str]]:
    by_ino: Dict[str, Set[str]] = {}
    for p, e in cur.items():
        if e["t"] == "f" and p in wanted:
            by_ino.setdefault(e["i"], set()).add(p)
    return {p: frozenset(g) for g in by_ino.values() for p in g}


def _overwrite(dfd: int, src: bytes, dst: bytes) -> None:
    """Copy src's bytes into the existing file dst (not atomic: only for mount points), then drop src."""
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dfd)
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    out = os.open(dst, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW, dir_fd=dfd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(out, view):]
        os.fsync(out)
    finally:
        os.close(out)
    os.unlink(src, dir_fd=dfd)


def _name(e: OSError) -> str:
    name = e.filename
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def _kind(e: Entry) -> str:
    return {"f": "file", "l": "symlink", "p": "fifo", "s": "socket", "c": "char device", "b": "block device"}[e["t"]]


def _meta_diff(cur: Entry, want: Entry) -> str:
    names = {"u": "uid", "g": "gid", "m": "mode", "mt": "mtime", "x": "xattrs/ACLs"}
    return ", ".join(names[k] for k in names if cur.get(k) != want.get(k))
