"""The snapshot program's shared helpers; also imported by the controller's store (`snapshot_id`, `pack`).

Paths travel as str decoded from bytes with utf-8/surrogateescape, so newlines and non-UTF-8 names survive
JSON; on the host every os call uses bytes (`enc`). Blobs live in pack files under BASE/host-snapshots/packs/.
"""

import contextlib
import ctypes
import hashlib
import json
import os
import re
import struct
from typing import Any, BinaryIO, Dict, List, Tuple, Union

from .. import layout
from ..errors import TargetError

FORMAT = 1
CHUNK = 1 << 20
TMP_PREFIX = os.fsencode(layout.TMP_PREFIX)
Entry = Dict[str, Any]


def enc(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def dec(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


ID_RE = re.compile(r"\A[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9._]{1,64}-[0-9a-f]{16}\Z")  # what snapshot_id makes


def manifest_path(base: bytes, sid: str) -> bytes:
    """Where snapshot `sid` is kept. An id is a name, never a path: anything snapshot_id cannot make is refused."""
    if not ID_RE.match(sid):
        raise TargetError("usage", f"{sid[:80]!r} is not a snapshot id")
    return os.path.join(layout.manifests(base), enc(sid) + b".jsonl")


def private_dirs(path: bytes) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)


def hash_file(path: bytes) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def write_new(path: bytes, data: Union[bytes, BinaryIO], mode: int = 0o600) -> bytes:
    """Write a temp file beside `path` (no fsync: callers sync the filesystem once, then rename)."""
    tmp = os.path.join(os.path.dirname(path), TMP_PREFIX + os.urandom(6).hex().encode() + b".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, bytes):
                f.write(data)
            else:
                while chunk := data.read(CHUNK):
                    f.write(chunk)
    except BaseException:
        _unlink_quiet(tmp)
        raise
    return tmp


def _unlink_quiet(path: bytes) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def sync_fs(path: bytes) -> None:
    """One syncfs(2) for the filesystem holding `path` instead of an fsync per file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) != 0:
            os.sync()
    except (OSError, AttributeError):
        os.sync()
    finally:
        os.close(fd)


def read_exact(f: BinaryIO, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(min(CHUNK, n - len(buf)))
        if not chunk:
            raise TargetError("protocol", "input ended early")
        buf += chunk
    return bytes(buf)


def pack(tag: bytes, name: str, data: bytes) -> bytes:
    """One record of the byte stream: tag (1), name length (2), name, data length (8), data."""
    n = enc(name)
    return tag + struct.pack(">H", len(n)) + n + struct.pack(">Q", len(data)) + data


def unpack(f: BinaryIO) -> Tuple[bytes, str, bytes]:
    tag = f.read(1)
    if tag in (b"", b"E"):
        return b"E", "", b""
    (nlen,) = struct.unpack(">H", read_exact(f, 2))
    name = dec(read_exact(f, nlen))
    (dlen,) = struct.unpack(">Q", read_exact(f, 8))
    return tag, name, read_exact(f, dlen)


def commit(pending: List[Tuple[bytes, bytes]]) -> None:
    """Make each temp durable, rename it into place, then make the renames durable."""
    for tmp, _final in pending:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for tmp, final in pending:
        os.rename(tmp, final)
    for d in {os.path.dirname(final) for _tmp, final in pending}:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def abort(pending: List[Tuple[bytes, bytes]]) -> None:
    for tmp, _final in pending:
        _unlink_quiet(tmp)


def snapshot_id(manifest: bytes) -> str:
    """time-host-hash: the hash covers the whole manifest, so an id also verifies its manifest."""
    header = json.loads(manifest.split(b"\n", 1)[0])
    stamp = re.sub(r"[^0-9T]", "", header["created"][:19]) + "Z"
    host = re.sub(r"[^A-Za-z0-9._]+", "_", header["host"])[:64] or "host"
    return f"{stamp}-{host}-{hashlib.sha256(manifest).hexdigest()[:16]}"


def id_matches(sid: str, manifest: bytes) -> bool:
    return hashlib.sha256(manifest).hexdigest()[:16] == sid.rsplit("-", 1)[-1]
