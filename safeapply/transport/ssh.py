"""The SSH transport: run commands over one connection opened by `sshconnect` (ProxyJump/ProxyCommand, host keys
checked against known_hosts, agent and key files) to where `sshconfig` (`ssh -G`) says a host is. paramiko is
imported only in this package."""

from __future__ import annotations

import logging
import select
import shlex
import threading
import time
from collections.abc import Sequence
from typing import BinaryIO

import paramiko

from safeapply.errors import UnreachableError
from safeapply.transport import idle as idle_limit
from safeapply.transport.base import Input, Transport
from safeapply.transport.sshconnect import open_connection
from safeapply.transport.sshtarget import SSHTarget

__all__ = ["SSHTarget", "SSHTransport"]

CHUNK = 1 << 20
# paramiko logs from its own threads (e.g. "Error reading SSH protocol banner" while a host is shut out); without a
# handler Python prints those to stderr. The error that matters reaches the caller as a safeapply error instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class SSHTransport(Transport):
    def __init__(self, target: SSHTarget, accept_new_host_keys: bool = False) -> None:
        self.name = target.name
        self.user = target.user
        self.target = target
        self._conn = open_connection(target, accept_new_host_keys)

    def close(self) -> None:
        self._conn.close()

    def _exec(
        self, argv: Sequence[str], stdin: Input, stdout: BinaryIO | None, timeout: float | None
    ) -> tuple[int, bytes, bytes]:
        transport = self._conn.transport
        if not transport.is_active():
            raise UnreachableError(f"{self.name}: the SSH connection was lost")
        try:
            chan = transport.open_session(timeout=self.target.timeout)
            chan.exec_command(shlex.join(argv))
            activity = [time.monotonic()]  # the last time a byte went either way
            writer = _start_writer(chan, stdin, activity)
            rc, out, err = _collect(chan, stdout, timeout, (idle_limit.current(), activity))
            writer.join()
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise UnreachableError(f"{self.name}: SSH connection failed during `{argv[0]}`: {e}") from e
        limit = idle_limit.current()
        if rc is None and limit is not None and time.monotonic() - activity[0] > limit:
            raise idle_limit.Stalled(f"{self.name}: `{shlex.join(argv)[:80]}` sent and read nothing for {limit:g}s "
                                     "(the host hangs?)", "look at the host; SAFEAPPLY_IDLE_TIMEOUT sets the limit")
        if rc is None:
            raise UnreachableError(f"{self.name}: `{shlex.join(argv)[:80]}` timed out after {timeout}s")
        return rc, out, err


def _start_writer(chan: paramiko.Channel, stdin: Input, activity: list[float]) -> threading.Thread:
    def write() -> None:
        try:
            if isinstance(stdin, bytes):
                for i in range(0, len(stdin), CHUNK):
                    chan.sendall(stdin[i:i + CHUNK])
                    activity[0] = time.monotonic()
            elif stdin is not None:
                while chunk := stdin.read(CHUNK):
                    chan.sendall(chunk)
                    activity[0] = time.monotonic()
            chan.shutdown_write()
        except (OSError, paramiko.SSHException):
            pass  # the reader sees the closed channel and reports it

    t = threading.Thread(target=write, daemon=True)
    t.start()
    return t


def _collect(
    chan: paramiko.Channel, stdout: BinaryIO | None, timeout: float | None,
    idle: tuple[float | None, list[float]] = (None, [0.0]),
) -> tuple[int | None, bytes, bytes]:
    """(exit status, stdout, stderr); status None once `timeout` (total) passed, or `idle[0]` seconds passed
    with no byte either way (idle[1][0]: the last time one went, the writer updates it too)."""
    out: list[bytes] = []
    err: list[bytes] = []
    deadline = time.monotonic() + timeout if timeout else None
    limit, activity = idle
    while True:
        select.select([chan], [], [], 0.5)
        while chan.recv_ready():
            data = chan.recv(CHUNK)
            activity[0] = time.monotonic()
            if stdout is not None:
                stdout.write(data)
            else:
                out.append(data)
        while chan.recv_stderr_ready():
            err.append(chan.recv_stderr(CHUNK))
            activity[0] = time.monotonic()
        # sshd may send exit-status before the last output: finish only once EOF has arrived too
        done = chan.exit_status_ready() and (chan.eof_received or chan.closed)
        if done and not chan.recv_ready() and not chan.recv_stderr_ready():
            return chan.recv_exit_status(), b"".join(out), b"".join(err)
        now = time.monotonic()
        if (deadline is not None and now > deadline) or (limit is not None and now - activity[0] > limit):
            chan.close()
            return None, b"", b""
