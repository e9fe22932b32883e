"""The transport contract: run an argv on a host (optionally as root: `become`), with stdin, a timeout,
streamed bytes; run python code on the host's interpreter.

Two implementations: `ssh.SSHTransport` (paramiko) and `local.LocalTransport` (subprocess). Everything
above this layer talks to hosts only through `Transport.run`.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import BinaryIO

from safeapply.errors import CommandFailed, NoPythonError
from safeapply.transport.become import Become
from safeapply.transport.become import Input as Input  # the contract's name for a command's stdin

AUTO_INTERPRETER = ("auto", "auto_silent", "auto_legacy", "auto_legacy_silent")
EXTRA_PYTHONS = ("/usr/libexec/platform-python",)  # after Ansible's INTERPRETER_PYTHON_FALLBACK: RHEL 8


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



class Transport(ABC):
    """One host. `name` is the inventory name used in every message; `user` is who we log in as; `become` how
    to become root (from the host's become variables); `interpreter` its ansible_python_interpreter (None or
    `auto*`: discovered once per connection)."""

    name: str
    user: str
    become: Become = Become()
    interpreter: str | None = None
    _send_password: bool | None = None  # probed on the first root command of this connection

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

    @property
    def root_via(self) -> str:
        """How root work runs here, for messages: "login", "sudo -n", "sudo (password)" or "su"."""
        if not self.needs_sudo_prefix:
            return "login"
        if self.become.method == "sudo":
            return "sudo (password)" if self._send_password else "sudo -n"
        return self.become.method

    def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        stdin: Input = None,
        stdout: BinaryIO | None = None,
        timeout: float | None = None,
    ) -> Result:
        """Run argv (as root with `sudo`: through the host's become unless we logged in as root)."""
        if not (sudo and self.needs_sudo_prefix):
            rc, out, err = self._exec(argv, stdin, stdout, timeout)
            return Result(self.name, tuple(argv), rc, out, err)
        if self._send_password is None:
            self._send_password = self.become.probe(lambda a, i: self._exec(a, i, None, timeout), self.name,
                                                    self.user)
        pw = self._send_password
        rc, out, err = self._exec(self.become.command(argv, pw), self.become.stdin(stdin, pw), stdout, timeout)
        err = self.become.clean_stderr(err, pw)
        if self.become.is_refusal(rc, err):
            raise self.become.refused(self.name, self.user, err)
        return Result(self.name, tuple(argv), rc, out, err)

    def python(
        self, code: str, *, args: Sequence[str] = (), sudo: bool = False, stdin: Input = None,
        stdout: BinaryIO | None = None, timeout: float | None = None,
    ) -> Result:
        """`PYTHON -c code args` on the host, PYTHON being its ansible_python_interpreter or the one discovered;
        a clear error if there is none. Only `safeapply.remote` sends code this way (the bootstrap of the on-host
        package): everything else calls package entries, run by the same interpreter."""
        res = self.run([*self.python_argv(), "-c", code, *args], sudo=sudo, stdin=stdin, stdout=stdout,
                       timeout=timeout)
        set_to = self._interpreter_set()
        if res.rc == 127 or (res.rc != 0 and _no_python(res.stderr, shlex.split(set_to)[0] if set_to else "python3")):
            raise self._no_python_error()
        return res

    def python_argv(self) -> tuple[str, ...]:
        """The interpreter's argv: ansible_python_interpreter as set; else a shell that runs the first python of
        the discovery list found on the PATH of whoever runs it (no extra round trip)."""
        set_to = self._interpreter_set()
        return tuple(shlex.split(set_to)) if set_to else ("sh", "-c", _discovery_script(), "sh")

    def _interpreter_set(self) -> str | None:
        """ansible_python_interpreter when it names one (not unset, not `auto*`)."""
        return self.interpreter if self.interpreter and self.interpreter not in AUTO_INTERPRETER else None

    def _no_python_error(self) -> NoPythonError:
        if self._interpreter_set():
            return NoPythonError(f"{self.name}: no python3 on the target at ansible_python_interpreter="
                                 f"{self.interpreter!r}", "set ansible_python_interpreter to the host's python3, "
                                 "or to `auto` to discover it")
        return NoPythonError(f"{self.name}: no python3 on the target (looked for {', '.join(_candidates())})",
                             "install python3 there (Ansible needs it too), or set ansible_python_interpreter "
                             "to its path")


@cache
def _candidates() -> tuple[str, ...]:
    """`python3` first (what the host's PATH calls python3, as before), then Ansible's discovery list."""
    from ansible import constants as C

    found = [str(p) for p in C.config.get_config_value("INTERPRETER_PYTHON_FALLBACK")]
    return tuple(dict.fromkeys(["python3", *found, *EXTRA_PYTHONS]))


def _discovery_script() -> str:
    """exec the first candidate that exists with the script's arguments; exit 127 when there is none."""
    names = " ".join(shlex.quote(p) for p in _candidates())
    return (f'for p in {names}; do command -v "$p" >/dev/null 2>&1 && exec "$p" "$@"; done; '
            'echo "python3: not found" >&2; exit 127')


def _no_python(stderr: bytes, exe: str = "python3") -> bool:
    """What a shell, sudo or env says when there is no `exe`. Only lines before python's own output count:
    a program that ran and failed (a traceback naming /usr/lib/python3/... and a missing file) is not it."""
    for s in stderr.decode("utf-8", "replace").splitlines():
        if s.startswith(("Traceback ", "SAFEAPPLY-ERROR ")):
            return False
        if f"{exe}: command not found" in s or f"{exe}: not found" in s or ("No such file or directory" in s
                                                                            and exe in s):
            return True
    return False


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(argv)
