"""Open one authenticated SSH connection to an `SSHTarget`: the byte stream (a TCP socket, a ProxyCommand run as
OpenSSH runs it, or a `direct-tcpip` channel through the ProxyJump hosts, each verified and authenticated the
same way), the host key check against known_hosts, then authentication. paramiko/socket errors become
safeapply errors naming the host (or the jump host) at fault."""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from typing import Any

import paramiko

from safeapply.errors import HostKeyError, UnreachableError
from safeapply.transport import knownhosts
from safeapply.transport.sshauth import authenticate
from safeapply.transport.sshtarget import SSHTarget


@dataclass
class Connection:
    """An authenticated paramiko Transport and the jump connection it runs through (closed with it)."""

    transport: paramiko.Transport
    via: Connection | None = None

    def close(self) -> None:
        self.transport.close()
        if self.via is not None:
            self.via.close()


class _DetachedProxyCommand(paramiko.ProxyCommand):
    """The ProxyCommand as OpenSSH runs it — `exec CMD` under the user's shell, tokens already expanded — in its
    own session: Ctrl-C on the terminal signals the whole foreground process group, and a proxy killed with it
    would leave the rollback that Ctrl-C starts no way to the host."""

    def __init__(self, command: str) -> None:
        self.cmd = [os.environ.get("SHELL") or "/bin/sh", "-c", f"exec {command}"]
        # stderr to /dev/null: a pipe nobody reads would stall a chatty proxy once it is full
        self.process = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, bufsize=0, start_new_session=True)
        self.timeout = None


def where(t: SSHTarget) -> str:
    return f"{t.user}@{t.name} ({t.hostname}:{t.port})"


def open_connection(t: SSHTarget, accept_new: bool) -> Connection:
    via = open_connection(t.proxy_jump, accept_new) if t.proxy_jump else None
    try:
        sock = _stream(t, via)
        tr = paramiko.Transport(sock)
    except BaseException:
        if via is not None:
            via.close()
        raise
    conn = Connection(tr, via)
    try:
        _handshake(t, tr, accept_new)
    except BaseException:
        conn.close()
        raise
    tr.set_keepalive(15)
    return conn


def _stream(t: SSHTarget, via: Connection | None) -> Any:
    try:
        if via is not None:
            return via.transport.open_channel("direct-tcpip", (t.hostname, t.port), ("127.0.0.1", 0),
                                              timeout=t.timeout)
        if t.proxy_command:
            return _DetachedProxyCommand(t.proxy_command)
        return socket.create_connection((t.hostname, t.port), timeout=t.timeout)
    except (paramiko.SSHException, OSError, EOFError) as e:
        hop = f" through jump host {t.proxy_jump.name.split(' ')[0]}" if t.proxy_jump else ""
        raise UnreachableError(f"{where(t)}: cannot connect{hop}: {e or type(e).__name__}",
                               "check ansible_host/ansible_port and the ssh config") from e


def _handshake(t: SSHTarget, tr: paramiko.Transport, accept_new: bool) -> None:
    entries = knownhosts.read((*t.known_hosts, *t.global_known_hosts))
    opts = tr.get_security_options()
    first = [k for k in knownhosts.preferred_key_types(entries, t.key_name) if k in opts.key_types]
    opts.key_types = (*first, *(k for k in opts.key_types if k not in first))
    tr.banner_timeout = tr.handshake_timeout = tr.auth_timeout = t.timeout
    try:
        tr.start_client(timeout=t.timeout)
        _verify(t, entries, tr.get_remote_server_key(), accept_new or t.accepts_new_keys)
        authenticate(t, tr, where(t))
    except (paramiko.SSHException, OSError, EOFError) as e:
        raise UnreachableError(f"{where(t)}: SSH failed: {e or type(e).__name__}",
                               "is sshd running and reachable?") from e


def _verify(t: SSHTarget, entries: list[knownhosts.Entry], key: paramiko.PKey, accept_new: bool) -> None:
    v = knownhosts.check(entries, t.key_name, key)
    files = " ".join((*t.known_hosts, *t.global_known_hosts))
    if v.status == "known":
        return
    if v.status == "revoked":
        raise HostKeyError(f"{t.name}: the SSH host key of {t.key_name} is REVOKED ({v.where})",
                           "the host presents a key marked @revoked in known_hosts: do not connect")
    if v.status == "changed":
        raise HostKeyError(
            f"{t.name}: the SSH host key of {t.key_name} CHANGED (possible man-in-the-middle; known: {v.where})",
            f"if the change is expected: ssh-keygen -R '{t.key_name}' -f {v.where.rsplit(':', 1)[0]}",
        )
    if accept_new:
        knownhosts.append_hashed(str(t.user_known_hosts), t.key_name, key)
        return
    ca = ("; a @cert-authority line names it, but safeapply cannot verify host certificates: add the host's own "
          "key" if v.ca_listed else "")
    raise HostKeyError(f"{t.name}: unknown SSH host key for {t.key_name} (not in {files}{ca})",
                       "verify it and add it with ssh-keyscan, or pass --accept-new-host-keys")
