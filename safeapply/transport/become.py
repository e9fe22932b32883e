"""How safeapply becomes root on a host for its own work (snapshot, scan, restore, lock, the dead-man's switch):
the host's become settings, read the way Ansible reads them (its sudo/su become plugins' options: inventory
variables, ansible.cfg `[privilege_escalation]`, ANSIBLE_BECOME_* environment), turned into an argv prefix.

    sudo, no password   sudo -H -n -u root -- ARGV                 (as before: passwordless sudo, no probe)
    sudo, a password    one probe per connection, `sudo -k -n -- /bin/sh -c 'exec "$@"' sh true`: when that works
                        (NOPASSWD) `sudo -H -n -u root -- /bin/sh -c 'exec "$@"' sh ARGV`; else the password is
                        checked once (`sudo -k -S -p '' ... true`), then every command is
                        sudo -H -k -S -p '' -u root -- /bin/sh -c 'exec "$@"' sh ARGV
                        with the password as the first line of its stdin
    su, a password      su -c 'ARGV' root  with the password as the first line of stdin (checked once)

The password never reaches argv, a log or an error message. `-k` makes sudo ask on every call, so it always
reads the password line and the command's own stdin (bytes or a stream) follows it untouched. safeapply's own
work always becomes root, whatever `become_user` says: `become_user` is for the playbook's tasks (Ansible uses
it there); with `su` the password is that of the user su switches to, so su with another become_user is refused.
"""

from __future__ import annotations

import io
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from safeapply.errors import SudoError, UsageError

METHODS = ("sudo", "su")
ROOT = "root"
HINT = "pass -K or set ansible_become_password (vaulted)"

Input = bytes | BinaryIO | None
Exec = Callable[[Sequence[str], Input], tuple[int, bytes, bytes]]


class WrongBecomePassword(SudoError):
    """sudo or su refused the password it was given (exit 13, like any other refusal)."""


@dataclass(frozen=True)
class Become:
    method: str = "sudo"
    user: str = ROOT  # become_user: the playbook's tasks run as this user; safeapply's own work as root
    password: str | None = field(default=None, repr=False)
    exe: str | None = None
    flags: str = ""

    @classmethod
    def from_vars(cls, vars: Mapping[str, Any]) -> Become:
        """The become settings Ansible would use for a host with these variables (unknown methods are kept, and
        refused only when root work needs them: a root login needs no become)."""
        from ansible import constants as C

        method = str(vars.get("ansible_become_method") or C.DEFAULT_BECOME_METHOD or "sudo")
        method = method.removeprefix("ansible.builtin.").removeprefix("ansible.legacy.")
        if method not in METHODS:
            return cls(method)
        opts = _plugin_options(method, vars)
        password = opts.get("become_pass")  # an empty one is none, as for Ansible's sudo plugin
        return cls(method, str(opts.get("become_user") or ROOT), str(password) if password else None,
                   opts.get("become_exe") or None, str(opts.get("become_flags") or ""))

    def probe(self, run: Exec, host: str, login: str) -> bool:
        """Check once per connection that root work is possible; True when each command must send the password.
        Raises SudoError (exit 13) when it is not, with the host untouched."""
        self._check_usable(host, login)
        if self.method == "su":
            return self._check_password(run, host, login)
        if self.password is None:
            return False  # as before: `sudo -n` on every call, a refusal reported by the call itself
        rc, _, err = run(self._sudo(["-k", "-n"], ["true"]), None)
        if rc == 0:
            return False  # NOPASSWD (or no authentication): sudo would not read the password line
        if not_allowed(err):
            raise self.refused(host, login, err)
        return self._check_password(run, host, login)

    def command(self, argv: Sequence[str], with_password: bool) -> tuple[str, ...]:
        if self.method == "su":
            return (self.exe or "su", *shlex.split(self.flags), "-c", shlex.join(argv), ROOT)
        return self._sudo(["-k", "-S", "-p", ""] if with_password else ["-n"], argv)

    def stdin(self, data: Input, with_password: bool) -> Input:
        """The command's stdin, behind the password line when the command must read one first."""
        if not with_password:
            return data
        line = (self.password or "").encode() + b"\n"
        if data is None or isinstance(data, bytes):
            return line + (data or b"")
        return io.BufferedReader(_Chained(line, data), 1 << 20)

    def clean_stderr(self, err: bytes, with_password: bool) -> bytes:
        """su prints its (localised) prompt on stderr, without a newline: what the command said follows it."""
        if self.method == "su" and with_password:
            return _PROMPT.sub(b"", err, count=1)
        return err

    def is_refusal(self, rc: int, err: bytes) -> bool:
        return rc == 1 and (not_allowed(err) or _needs_password(err) or _su_failed(err))

    def refused(self, host: str, login: str, err: bytes) -> SudoError:
        if not_allowed(err):
            return SudoError(f"{host}: user {login!r} may not run sudo as root there",
                             "grant it sudo rights (as Ansible's become needs too), or connect as root")
        if self.method == "su":
            return SudoError(f"{host}: su to root needs root's password", HINT)
        return SudoError(f"{host}: user {login!r} cannot run sudo without a password",
                         f"{HINT}, grant NOPASSWD sudo to that user, or connect as root")

    def _check_usable(self, host: str, login: str) -> None:
        if self.method not in METHODS:
            raise UsageError(f"{host}: become method {self.method!r} is not supported for safeapply's own root "
                             f"work (only {' and '.join(METHODS)})", "set ansible_become_method, or log in as root")
        if self.method == "su" and self.user != ROOT:
            raise SudoError(f"{host}: safeapply's own work needs root, but su would switch to {self.user!r} "
                            "(with that user's password)", "use become_method sudo, or become_user root")
        if self.method == "su" and self.password is None:
            raise self.refused(host, login, b"")

    def _check_password(self, run: Exec, host: str, login: str) -> bool:
        rc, _, err = run(self.command(["true"], True), self.stdin(None, True))
        if rc == 0:
            return True
        if not_allowed(err):
            raise self.refused(host, login, err)
        if b"terminal" in err:  # an su (shadow's, busybox's) that reads passwords only from a terminal
            raise SudoError(f"{host}: su there reads a password only from a terminal, which safeapply does not use",
                            "use become_method sudo for this host")
        who = f"sudo for {login!r}" if self.method == "sudo" else "su to root"
        raise WrongBecomePassword(f"{host}: the become password was refused ({who})",
                                  "check ansible_become_password (or what you typed for -K)")

    def _sudo(self, mode: Sequence[str], argv: Sequence[str]) -> tuple[str, ...]:
        """With a password set, every command (the probe's `true` too) runs under /bin/sh, as Ansible's become
        does: one sudoers rule decides for all of them, so sudo reads the password line whenever the probe said
        it would (a NOPASSWD rule for some commands only cannot leave that line to a command's stdin)."""
        shell = SHELL if self.password is not None else ()
        return (self.exe or "sudo", *_sudo_flags(self.flags), *mode, "-u", ROOT, "--", *shell, *argv)


_PROMPT = re.compile(rb"\A[^\n:]{1,40}: ")
SHELL = ("/bin/sh", "-c", 'exec "$@"', "sh")


def _plugin_options(method: str, vars: Mapping[str, Any]) -> dict[str, Any]:
    """Ansible's own become plugin resolves its options (which variable wins, ansible.cfg, environment)."""
    from ansible.plugins.loader import become_loader

    plugin = become_loader.get(method)
    plugin.set_options(var_options=dict(vars))
    return {k: plugin.get_option(k) for k in ("become_user", "become_pass", "become_exe", "become_flags")}


def _sudo_flags(flags: str) -> list[str]:
    """become_flags without what safeapply sets itself (-n/-S/-k, as Ansible drops -n when it has a password)."""
    return [f for f in shlex.split(flags) if f not in ("-n", "--non-interactive", "-S", "--stdin", "-k")]


def not_allowed(err: bytes) -> bool:
    s = err.decode("utf-8", "replace")
    return "is not in the sudoers file" in s or "may not run sudo" in s or "is not allowed to execute" in s


def _needs_password(err: bytes) -> bool:
    return b"a password is required" in err


def _su_failed(err: bytes) -> bool:
    return err.startswith(b"su: ") or b"\nsu: " in err


class _Chained(io.RawIOBase):
    """`head` then everything `tail` has: a stream for the password line followed by the command's stdin."""

    def __init__(self, head: bytes, tail: BinaryIO) -> None:
        self._head = head
        self._tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        data = self._head[:len(buf)] if self._head else self._tail.read(len(buf))
        self._head = self._head[len(data):]
        buf[:len(data)] = data
        return len(data)
