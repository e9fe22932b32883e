"""The local transport: the same contract as SSH, through subprocess (ansible_connection=local)."""

from __future__ import annotations

import getpass
import shutil
import subprocess
from collections.abc import Sequence
from typing import BinaryIO

from safeapply.errors import UnreachableError
from safeapply.transport.base import Input, Transport


class LocalTransport(Transport):
    def __init__(self, name: str = "localhost") -> None:
        self.name = name
        self.user = getpass.getuser()

    def _exec(
        self, argv: Sequence[str], stdin: Input, stdout: BinaryIO | None, timeout: float | None
    ) -> tuple[int, bytes, bytes]:
        if shutil.which(argv[0]) is None:
            return 127, b"", f"{argv[0]}: command not found".encode()
        data = stdin if isinstance(stdin, bytes) else None
        pipe_in: BinaryIO | int | None = subprocess.DEVNULL if stdin is None else None
        if stdin is not None and not isinstance(stdin, bytes):
            pipe_in = stdin
        try:
            proc = subprocess.run(
                list(argv),
                input=data,
                stdin=pipe_in,
                stdout=stdout if stdout is not None else subprocess.PIPE,
                stderr=subprocess.PIPE,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise UnreachableError(f"{self.name}: `{argv[0]}` timed out after {timeout}s") from e
        return proc.returncode, proc.stdout or b"", proc.stderr or b""
