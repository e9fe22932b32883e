"""The local transport: the same contract as SSH, through subprocess (ansible_connection=local)."""

from __future__ import annotations

import contextlib
import getpass
import io
import shutil
import subprocess
import threading
from collections.abc import Sequence
from typing import BinaryIO

from safeapply.errors import UnreachableError
from safeapply.transport.base import Input, Transport
from safeapply.transport.become import Become

CHUNK = 1 << 20


class LocalTransport(Transport):
    def __init__(self, name: str = "localhost", become: Become | None = None, interpreter: str | None = None) -> None:
        self.name = name
        self.user = getpass.getuser()
        self.become = become or Become()
        self.interpreter = interpreter

    def _exec(
        self, argv: Sequence[str], stdin: Input, stdout: BinaryIO | None, timeout: float | None
    ) -> tuple[int, bytes, bytes]:
        if shutil.which(argv[0]) is None:
            return 127, b"", f"{argv[0]}: command not found".encode()
        pump = stdin is not None and not isinstance(stdin, bytes) and not _has_fd(stdin)
        if stdin is None:
            pipe_in: BinaryIO | int = subprocess.DEVNULL
        elif isinstance(stdin, bytes) or pump:
            pipe_in = subprocess.PIPE
        else:
            pipe_in = stdin
        with subprocess.Popen(list(argv), stdin=pipe_in, stderr=subprocess.PIPE,
                              stdout=stdout if stdout is not None else subprocess.PIPE) as proc:
            data = stdin if isinstance(stdin, bytes) else None
            if pump and proc.stdin is not None:  # a stream without a file descriptor (the become password line first)
                threading.Thread(target=_copy, args=(stdin, proc.stdin), daemon=True).start()
                proc.stdin = None  # written by that thread: communicate() must not close it
            try:
                out, err = proc.communicate(data, timeout=timeout)
            except subprocess.TimeoutExpired as e:
                proc.kill()
                raise UnreachableError(f"{self.name}: `{argv[0]}` timed out after {timeout}s") from e
        return proc.returncode, out or b"", err or b""


def _has_fd(stream: BinaryIO) -> bool:
    try:
        stream.fileno()
    except (OSError, io.UnsupportedOperation, AttributeError):
        return False
    return True


def _copy(src: BinaryIO, dst: BinaryIO) -> None:
    try:
        while chunk := src.read(CHUNK):
            dst.write(chunk)
    except OSError:
        pass  # the command exited early; its exit status says why
    finally:
        with contextlib.suppress(OSError):
            dst.close()
