"""Can we work on a host? Connect, find python3 (3.8 or newer: `safeapply.target.MIN_PYTHON`), check that it
becomes root (sudo -n, or sudo/su with the become password).
The first thing every command does; it installs nothing on the host."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from safeapply import remote
from safeapply.errors import SudoError
from safeapply.inventory import Host
from safeapply.transport.base import Transport


@dataclass(frozen=True)
class HostCheck:
    name: str
    user: str
    python: str
    root_via: str  # "login", "sudo -n", "sudo (password)" or "su" (Transport.root_via)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def check(transport: Transport) -> HostCheck:
    """Raise the documented error (no python3 or one too old, sudo needs a password) or describe the host."""
    python = remote.python_version(transport)
    res = transport.run(["true"], sudo=True)
    if not res.ok and _tty_required(res.stderr):
        raise SudoError(f"{transport.name}: sudo there needs a terminal (`Defaults requiretty`); safeapply runs "
                        "commands without one", f"connect as root, or add `Defaults:{transport.user} !requiretty` "
                        "to the host's sudoers")
    res.check()
    return HostCheck(transport.name, transport.user, python, transport.root_via)


def connect_and_check(host: Host, accept_new_host_keys: bool = False) -> HostCheck:
    with host.connect(accept_new_host_keys) as t:
        return check(t)


def sudo_needs_tty(transport: Transport) -> bool:
    """sudo on the host refuses to run without a terminal (sudoers `Defaults requiretty`). A root login passes
    `check` then, but Ansible's `become` to another user calls sudo, and with SSH pipelining it has no terminal:
    the run falls back to Ansible's default (no pipelining), as Ansible's documentation says."""
    res = transport.run(["sudo", "-n", "true"], timeout=30)
    return not res.ok and _tty_required(res.stderr)


def _tty_required(stderr: bytes) -> bool:
    return b"must have a tty" in stderr
