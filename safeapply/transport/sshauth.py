"""Public-key authentication in OpenSSH's order (sshconnect2.c pubkey_prepare): the ssh-agent's keys first —
a configured IdentityFile whose public key is in the agent is used through the agent (so a passphrase-protected
key file works when its key is loaded with ssh-add), other agent keys only without `IdentitiesOnly yes` — then
the remaining key files. A passphrase-protected file that is not in the agent cannot be used unattended; the
error then says `ssh-add FILE`. Finally the password (ansible_password), if set."""

from __future__ import annotations

import base64
import functools
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from safeapply.errors import AuthError
from safeapply.transport.sshtarget import SSHTarget


@dataclass
class Attempt:
    """What authentication tried, for the one-line error when everything failed."""

    tried: list[str] = field(default_factory=list)
    locked: list[str] = field(default_factory=list)  # passphrase-protected files whose key is not in the agent
    agent: str | None = None  # why the agent was not usable, if it was not


class _Agent(paramiko.agent.AgentSSH):
    """The agent at an explicit socket path (IdentityAgent), not only $SSH_AUTH_SOCK."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            self._connect(sock)  # type: ignore[attr-defined]  # paramiko's stubs omit AgentSSH's internals
        except BaseException:
            sock.close()
            raise

    def close(self) -> None:
        self._close()  # type: ignore[attr-defined]


def authenticate(t: SSHTarget, tr: paramiko.Transport, where: str) -> None:
    for path in t.required_keys:
        if not Path(path).exists():
            raise AuthError(f"{t.name}: private key file {path} does not exist", "fix ansible_ssh_private_key_file")
    att = Attempt()
    agent = _open_agent(t, att)
    try:
        for label, key in _candidates(t, agent, att):
            att.tried.append(label)
            if _ok(tr, functools.partial(tr.auth_publickey, t.user, key)):
                return
        password = t.password
        if password:
            att.tried.append("password")
            if _ok(tr, lambda: tr.auth_password(t.user, password)):
                return
    finally:
        if agent is not None:
            agent.close()
    raise AuthError(f"{where}: SSH authentication failed with {', '.join(att.tried) or 'no key'}", _hint(att))


def _ok(tr: paramiko.Transport, auth: Callable[[], object]) -> bool:
    try:
        auth()
    except paramiko.AuthenticationException:
        return False
    return tr.is_authenticated()


def _open_agent(t: SSHTarget, att: Attempt) -> _Agent | None:
    if not t.identity_agent:
        att.agent = "no ssh-agent (SSH_AUTH_SOCK unset or IdentityAgent none)"
        return None
    try:
        return _Agent(t.identity_agent, t.timeout)
    except (OSError, paramiko.SSHException) as e:
        att.agent = f"ssh-agent at {t.identity_agent} not usable: {e}"
        return None


def _candidates(t: SSHTarget, agent: _Agent | None, att: Attempt) -> list[tuple[str, paramiko.PKey]]:
    # as OpenSSH: a file counts if its public key can be read (a private key, or a public key file such as
    # `IdentityFile ~/.ssh/key.pub` for a key that lives only in the agent)
    files = [(path, blob) for path in t.key_files if (blob := public_blob(path)) is not None or Path(path).is_file()]
    out: list[tuple[str, paramiko.PKey]] = []
    for ak in agent.get_keys() if agent is not None else ():
        match = next((f for f in files if f[1] == ak.asbytes()), None)
        if match is not None:
            files.remove(match)
            out.append((f"{match[0]} (via ssh-agent)", ak))
        elif not t.identities_only:
            out.append((f"agent key {ak.comment or ak.fingerprint}", ak))
    for path, _blob in files:
        if not Path(path).is_file() or _public_line(path) is not None:
            continue  # only the public half here, and its key is not in the agent
        key = _load(path, att)
        if key is not None:
            out.append((path, key))
    return out


def _load(path: str, att: Attempt) -> paramiko.PKey | None:
    try:
        return paramiko.PKey.from_path(path)
    except (paramiko.SSHException, OSError, ValueError, TypeError) as e:
        # paramiko raises PasswordRequiredException, or (OpenSSH format, via cryptography) TypeError
        if isinstance(e, paramiko.PasswordRequiredException) or "password" in str(e).lower():
            att.locked.append(path)
        else:
            att.tried.append(f"{path} (unreadable: {e})")
    return None


def public_blob(path: str) -> bytes | None:
    """The public key of a key file without its passphrase (as OpenSSH's sshkey_load_public): the file itself if
    it is a public key, else FILE.pub, else the clear-text public part of an OpenSSH-format private key."""
    blob = _public_line(path)
    if blob is None:
        blob = _public_line(path + ".pub")
    if blob is not None:
        return blob
    try:
        text = Path(path).read_text(errors="replace")
        body = text.split("-----BEGIN OPENSSH PRIVATE KEY-----")[1].split("-----END")[0]
        data = base64.b64decode("".join(body.split()))
    except (OSError, IndexError, ValueError):
        return None
    magic = b"openssh-key-v1\0"
    if not data.startswith(magic):
        return None
    pos = len(magic)
    try:
        for _ in range(3):  # ciphername, kdfname, kdfoptions
            pos += 4 + struct.unpack(">I", data[pos:pos + 4])[0]
        pos += 4  # number of keys
        n = struct.unpack(">I", data[pos:pos + 4])[0]
    except struct.error:
        return None
    return data[pos + 4:pos + 4 + n] or None


def _public_line(path: str) -> bytes | None:
    """The key of a public key file (`TYPE BASE64 [COMMENT]`), or None if `path` is not one."""
    try:
        with open(path, "rb") as f:
            fields = f.read(16384).split()
        if len(fields) >= 2 and fields[0].startswith((b"ssh-", b"ecdsa-", b"sk-")):
            return base64.b64decode(fields[1], validate=True)
    except (OSError, ValueError):
        pass
    return None


def _hint(att: Attempt) -> str:
    if att.locked:
        add = " ".join(att.locked)
        why = f" ({att.agent})" if att.agent else ""
        return f"{add} is passphrase-protected and its key is not in the ssh-agent{why}: run `ssh-add {add}`"
    if not att.tried:
        return (f"no key to offer ({att.agent or 'the ssh-agent holds no keys'}, and no key file exists): "
                "ssh-add a key, or set ansible_ssh_private_key_file")
    return "check the user, and that one of these keys is in its authorized_keys"
