"""Calls into the snapshot program on the host (`snapshot.<op>` entries of `safeapply.target`) and the byte
stream it answers with."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from safeapply import remote
from safeapply.errors import SnapshotError
from safeapply.target.snapshot.common import pack, unpack
from safeapply.transport.base import Transport


def call(t: Transport, op: str, args: Sequence[str], stdin: bytes | None = None, stdout: BinaryIO | None = None,
         timeout: float | None = None) -> bytes:
    """Run one operation of the snapshot program (as root); its errors become SnapshotError/UsageError. A host
    that sends and reads nothing for `idle_timeout` seconds (SAFEAPPLY_IDLE_TIMEOUT, safeapply.toml; 300 by
    default, 0: none) ends the call: UnreachableError (exit 10), never a run hanging with the host lock."""
    from safeapply.project_config import setting

    return remote.call(t, f"snapshot.{op}", args, sudo=True, stdin=stdin, stdout=stdout, timeout=timeout,
                       idle=float(setting("idle_timeout")))


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
    return io.BytesIO(b"".join(pack(tag, name, data) for tag, name, data in items) + b"E")
