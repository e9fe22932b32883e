"""Calls into the target program over a Transport, and the byte stream it answers with."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from safeapply.errors import SafeapplyError, SnapshotError, UsageError
from safeapply.snapshot.bundle import bootstrap
from safeapply.snapshot.target.common import unpack
from safeapply.transport.base import Input, Transport

TARGET_BASE = "/var/lib/safeapply"
WHAT = {
    "store": "the on-target store is not writable (disk full?)",
    "unsafe": "refused an unsafe path; nothing was changed",
    "corrupt": "a blob or manifest does not verify; nothing was changed",
    "missing": "a blob is missing; nothing was changed",
    "protocol": "the byte stream was cut short",
    "space": "the host's disk is full; nothing was changed",
    "partial": "the host was changed in part: restore again once the cause is fixed",
}


def call(t: Transport, op: str, args: Sequence[str], stdin: Input = None, stdout: BinaryIO | None = None,
         timeout: float | None = None) -> bytes:
    """Run one operation of the target program (as root); its errors become SnapshotError/UsageError."""
    res = t.python(bootstrap(), args=[op, *args], sudo=True, stdin=stdin, stdout=stdout, timeout=timeout)
    if res.rc == 0:
        return res.stdout
    raise _error(t.name, op, res.rc, res.stderr)


def _error(host: str, op: str, rc: int, stderr: bytes) -> SafeapplyError:
    text = stderr.decode("utf-8", "replace")
    for line in text.splitlines():
        if line.startswith("SAFEAPPLY-ERROR "):
            _, kind, msg = line.split(" ", 2)
            if kind == "unknown":
                return UsageError(f"{host}: {msg}", "list snapshots with `safeapply snapshots`")
            return SnapshotError(f"{host}: {op}: {msg}", WHAT.get(kind))
    tail = text.strip().splitlines()[-1:] or ["no output"]
    return SnapshotError(f"{host}: the snapshot program failed ({op}, exit {rc}): {tail[0]}")


def records(stream: BinaryIO) -> Iterator[tuple[bytes, str, bytes]]:
    """(tag, name, data) until the end mark; a cut-short stream is a SnapshotError."""
    while True:
        try:
            tag, name, data = unpack(stream)
        except Exception as e:
            raise SnapshotError(f"the byte stream from the host was cut short: {e}") from e
        if tag == b"E":
            return
        yield tag, name, data


def fetch(t: Transport, op: str, args: Sequence[str], request: bytes) -> tuple[list[tuple[bytes, str, bytes]], int]:
    """Run a streaming op; returns its records and the number of bytes received."""
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
        call(t, op, args, stdin=request, stdout=spool)  # type: ignore[arg-type]
        size = spool.tell()
        spool.seek(0)
        return list(records(spool)), size  # type: ignore[arg-type]


def stream_of(items: Sequence[tuple[bytes, str, bytes]]) -> io.BytesIO:
    from safeapply.snapshot.target.common import pack

    return io.BytesIO(b"".join(pack(tag, name, data) for tag, name, data in items) + b"E")
