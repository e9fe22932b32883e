"""The transport contract: run an argv on a host (optional sudo, stdin, timeout) and stream bytes.

Two implementations: `ssh.SSHTransport` (paramiko) and `local.LocalTransport` (subprocess). Everything
above this layer talks to hosts only through `Transport.run`.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from safeapply.errors import CommandFailed, NoPythonError, SudoError

SUDO = ("sudo", "-n", "--")


@dataclass(frozen=True)
class Result:
    host: str
    argv: tuple[str, ...]
    rc: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    def check(self) -> Result:
        if self.rc != 0:
            raise CommandFailed(self.host, self.argv, self.rc, self.stderr)
        return self


Input = bytes | BinaryIO | None


class Transport(ABC):
    """One host. `name` is the inventory name used in every message; `user` is who we log in as."""

    name: str
    user: str

    @abstractmethod
    def _exec(
        self, argv: Sequence[str], stdin: Input, stdout: BinaryIO | None, timeout: float | None
    ) -> tuple[int, bytes, bytes]:
        """Run argv as-is; stream stdout into `stdout` when given (then return b"" for it)."""

    def close(self) -> None:  # noqa: B027 - optional for implementations
        pass

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def needs_sudo_prefix(self) -> bool:
        return self.user != "root"

    def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        stdin: Input = None,
        stdout: BinaryIO | None = None,
        timeout: float | None = None,
    ) -> Result:
        full = (*SUDO, *argv) if sudo and self.needs_sudo_prefix else tuple(argv)
        rc, out, err = self._exec(full, stdin, stdout, timeout)
        if sudo and self.needs_sudo_prefix and rc == 1 and _sudo_refused(err):
            raise SudoError(
                f"{self.name}: user {self.user!r} cannot run sudo without a password",
                "grant NOPASSWD sudo to that user, or connect as root",
            )
        return Result(self.name, tuple(argv), rc, out, err)

    def python(
        self, code: str, *, args: Sequence[str] = (), sudo: bool = False, stdin: Input = None,
        stdout: BinaryIO | None = None, timeout: float | None = None,
    ) -> Result:
        """`python3 -c code args` on the host; a clear error if it has no python3. Only `safeapply.remote`
        sends code this way (the bootstrap of the on-host package): everything else calls package entries."""
        res = self.run(["python3", "-c", code, *args], sudo=sudo, stdin=stdin, stdout=stdout, timeout=timeout)
        if res.rc == 127 or (res.rc != 0 and _no_python(res.stderr)):
            raise NoPythonError(
                f"{self.name}: no python3 on the target",
                "install python3 there (Ansible needs it too)",
            )
        return res


def _sudo_refused(stderr: bytes) -> bool:
    s = stderr.decode("utf-8", "replace")
    return "a password is required" in s or "is not in the sudoers file" in s or "may not run sudo" in s


def _no_python(stderr: bytes) -> bool:
    """What a shell, sudo or env says when there is no python3. Only lines before python3's own output count:
    a program that ran and failed (a traceback naming /usr/lib/python3/... and a missing file) is not it."""
    for s in stderr.decode("utf-8", "replace").splitlines():
        if s.startswith(("Traceback ", "SAFEAPPLY-ERROR ")):
            return False
        if "python3: command not found" in s or "python3: not found" in s or ("No such file or directory" in s
                                                                             and "python3" in s):
            return True
    return False


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(argv)
