"""The SSH transport. Host keys are verified against known_hosts and unknown keys are rejected unless the caller
opted in (accept-new). paramiko/socket errors become safeapply errors here. paramiko is imported only in this
package: here, and in `sshconfig` (where a connection goes: ~/.ssh/config and Ansible's connection variables)."""

from __future__ import annotations

import logging
import select
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import paramiko

from safeapply.errors import AuthError, HostKeyError, UnreachableError
from safeapply.transport.base import Input, Transport

CHUNK = 1 << 20
# paramiko logs from its own threads (e.g. "Error reading SSH protocol banner" while a host is shut out); without a
# handler Python prints those to stderr. The error that matters reaches the caller as a safeapply error instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class SSHTarget:
    """Everything needed to open one SSH connection. Never holds a secret other than an optional password."""

    name: str
    hostname: str
    user: str
    port: int = 22
    key_files: tuple[str, ...] = ()
    proxy_command: str | None = None
    known_hosts: tuple[str, ...] = ()
    host_key_alias: str | None = None
    timeout: float = 10.0
    password: str | None = field(default=None, repr=False)

    @property
    def key_name(self) -> str:
        """The name host keys are recorded under in known_hosts."""
        if self.host_key_alias:
            return self.host_key_alias
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"

    @property
    def user_known_hosts(self) -> Path:
        return Path(self.known_hosts[0]).expanduser() if self.known_hosts else Path("~/.ssh/known_hosts").expanduser()


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """Like OpenSSH's StrictHostKeyChecking=accept-new: record an unknown key; a changed key still fails."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path, "a") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


class SSHTransport(Transport):
    def __init__(self, target: SSHTarget, accept_new_host_keys: bool = False) -> None:
        self.name = target.name
        self.user = target.user
        self.target = target
        self._client = _connect(target, accept_new_host_keys)

    def close(self) -> None:
        self._client.close()

    def _exec(
        self, argv: Sequence[str], stdin: Input, stdout: BinaryIO | None, timeout: float | None
    ) -> tuple[int, bytes, bytes]:
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise UnreachableError(f"{self.name}: the SSH connection was lost")
        try:
            chan = transport.open_session(timeout=self.target.timeout)
            chan.exec_command(shlex.join(argv))
            writer = _start_writer(chan, stdin)
            rc, out, err = _collect(chan, stdout, timeout)
            writer.join()
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise UnreachableError(f"{self.name}: SSH connection failed during `{argv[0]}`: {e}") from e
        if rc is None:
            raise UnreachableError(f"{self.name}: `{shlex.join(argv)[:80]}` timed out after {timeout}s")
        return rc, out, err


def _start_writer(chan: paramiko.Channel, stdin: Input) -> threading.Thread:
    def write() -> None:
        try:
            if isinstance(stdin, bytes):
                chan.sendall(stdin)
            elif stdin is not None:
                while chunk := stdin.read(CHUNK):
                    chan.sendall(chunk)
            chan.shutdown_write()
        except (OSError, paramiko.SSHException):
            pass  # the reader sees the closed channel and reports it

    t = threading.Thread(target=write, daemon=True)
    t.start()
    return t


def _collect(
    chan: paramiko.Channel, stdout: BinaryIO | None, timeout: float | None
) -> tuple[int | None, bytes, bytes]:
    out: list[bytes] = []
    err: list[bytes] = []
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        select.select([chan], [], [], 0.5)
        while chan.recv_ready():
            data = chan.recv(CHUNK)
            if stdout is not None:
                stdout.write(data)
            else:
                out.append(data)
        while chan.recv_stderr_ready():
            err.append(chan.recv_stderr(CHUNK))
        # sshd may send exit-status before the last output: finish only once EOF has arrived too
        done = chan.exit_status_ready() and (chan.eof_received or chan.closed)
        if done and not chan.recv_ready() and not chan.recv_stderr_ready():
            return chan.recv_exit_status(), b"".join(out), b"".join(err)
        if deadline is not None and time.monotonic() > deadline:
            chan.close()
            return None, b"", b""


def _key_files(t: SSHTarget) -> Any:
    # paramiko accepts a list here although its stubs say str
    return [str(Path(k).expanduser()) for k in t.key_files] or None


def _expand(cmd: str, t: SSHTarget) -> str:
    repl = {"%h": t.hostname, "%p": str(t.port), "%r": t.user, "%n": t.name, "%%": "%"}
    for k, v in repl.items():
        cmd = cmd.replace(k, v)
    return cmd


class _DetachedProxyCommand(paramiko.ProxyCommand):
    """paramiko's ProxyCommand in its own session: Ctrl-C on the terminal signals the whole foreground
    process group, and a proxy killed with it would leave the rollback that Ctrl-C starts no way to the host."""

    def __init__(self, command_line: str) -> None:
        self.cmd = shlex.split(command_line)
        self.process = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, bufsize=0, start_new_session=True)
        self.timeout = None


def _socket(t: SSHTarget) -> socket.socket | paramiko.ProxyCommand:
    if t.proxy_command:
        return _DetachedProxyCommand(_expand(t.proxy_command, t))
    return socket.create_connection((t.hostname, t.port), timeout=t.timeout)


def _connect(t: SSHTarget, accept_new: bool) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_system_host_keys()
    for path in t.known_hosts or ("~/.ssh/known_hosts",):
        p = Path(path).expanduser()
        if p.exists():
            client.load_host_keys(str(p))
    client.set_missing_host_key_policy(_AcceptNew(t.user_known_hosts) if accept_new else paramiko.RejectPolicy())
    for key in t.key_files:
        if not Path(key).expanduser().exists():
            raise AuthError(f"{t.name}: private key file {key} does not exist", "fix ansible_ssh_private_key_file")
    where = f"{t.user}@{t.name} ({t.hostname}:{t.port})"
    try:
        sock = _socket(t)
        # Pass the known_hosts name as `hostname`: the socket is already connected, so paramiko resolves nothing.
        name, port = (t.host_key_alias, 22) if t.host_key_alias else (t.hostname, t.port)
        client.connect(
            name, port=port, username=t.user, key_filename=_key_files(t),
            password=t.password, sock=sock, timeout=t.timeout, banner_timeout=t.timeout, auth_timeout=t.timeout,
            allow_agent=not t.key_files, look_for_keys=not t.key_files,
        )
    except paramiko.BadHostKeyException as e:
        raise HostKeyError(
            f"{t.name}: the SSH host key of {t.key_name} CHANGED (possible man-in-the-middle)",
            f"if the change is expected: ssh-keygen -R '{t.key_name}' -f {t.user_known_hosts}",
        ) from e
    except paramiko.AuthenticationException as e:
        keys = ", ".join(t.key_files) or "agent/default keys"
        raise AuthError(f"{where}: SSH authentication failed with {keys}",
                        "check the user and that the key is in its authorized_keys") from e
    except paramiko.SSHException as e:
        if "not found in known_hosts" in str(e):
            raise HostKeyError(
                f"{t.name}: unknown SSH host key for {t.key_name} (not in {t.user_known_hosts})",
                "verify it and add it with ssh-keyscan, or pass --accept-new-host-keys",
            ) from e
        raise UnreachableError(f"{where}: SSH failed: {e}", "is sshd running and reachable?") from e
    except (OSError, EOFError) as e:
        raise UnreachableError(f"{where}: cannot connect: {e}", "check ansible_host/ansible_port") from e
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(15)
    return client
