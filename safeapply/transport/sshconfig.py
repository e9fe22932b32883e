"""Where an SSH connection goes, as OpenSSH itself resolves it: Ansible's connection variables become the
command-line options ansible-playbook's ssh connection would pass, and `ssh -G [options] HOST` (the machine's
OpenSSH client) says what they mean together with ~/.ssh/config (Include, Match, Host patterns, ProxyJump,
ProxyCommand, IdentityFile, User, Port, known_hosts files, ...). Each ProxyJump hop is resolved the same way,
with the options OpenSSH gives the `ssh -W` it would run for that hop (-l, -p, -J, -F).
"""

from __future__ import annotations

import functools
import getpass
import os
import shlex
import shutil
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from safeapply.errors import ConfigError, UsageError
from safeapply.transport.sshtarget import SSHTarget

# ansible_connection values safeapply serves with its SSH transport (`local` never gets here).
SSH_CONNECTIONS = frozenset({"ssh", "ansible.builtin.ssh", "paramiko", "paramiko_ssh", "ansible.builtin.paramiko_ssh",
                             "smart"})
DEFAULT_TIMEOUT = 10  # ansible-core's default `timeout`, which its ssh connection passes as ConnectTimeout
MAX_JUMPS = 10
# OpenSSH's options that take an argument (ssh.c getopt string), to find -F among ansible_ssh_common_args.
_OPTS_WITH_ARG = set("BbcDEeFIiJLlmOopQRSWw")


def check_connection(name: str, hostvars: Mapping[str, Any]) -> None:
    """A connection plugin safeapply cannot serve (docker, winrm, network_cli, ...) is refused in one line."""
    conn = str(hostvars.get("ansible_connection") or "ssh")
    if conn not in SSH_CONNECTIONS:
        raise ConfigError(f"{name}: ansible_connection={conn} is not supported by safeapply",
                          "safeapply serves the ssh, paramiko and local connections")


def ssh_target(name: str, hostvars: Mapping[str, Any]) -> SSHTarget:
    """The SSHTarget of inventory host `name` with connection variables `hostvars` (ansible_host, ansible_port,
    ansible_user, ansible_ssh_private_key_file, ansible_ssh_common_args, ansible_ssh_extra_args, ...)."""
    check_connection(name, hostvars)
    v = hostvars
    host = str(_var(v, "ansible_host", "ansible_ssh_host") or name)
    user = _var(v, "ansible_user", "ansible_ssh_user")
    _check_host(name, "ansible_host", host)
    if user:
        _check_user(name, str(user))
    key = _var(v, "ansible_private_key_file", "ansible_ssh_private_key_file")
    # the order of Ansible's ssh connection (_build_command): ssh_args, then its own -o options, then the common
    # and extra args; OpenSSH keeps the first value of each option
    args = _split(name, "ansible_ssh_args", v.get("ansible_ssh_args"))
    port = _var(v, "ansible_port", "ansible_ssh_port")
    if port not in (None, ""):
        _port(name, port)  # before OpenSSH sees it: the error names the variable, not an ssh option
    for opt, value in (("Port", port), ("IdentityFile", key), ("User", user),
                       ("ConnectTimeout", _var(v, "ansible_ssh_timeout"))):
        if value not in (None, ""):
            args += ["-o", f'{opt}="{value}"' if opt in ("IdentityFile", "User") else f"{opt}={value}"]
    for var in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        args += _split(name, var, v.get(var))
    password = _var(v, "ansible_password", "ansible_ssh_pass", "ansible_ssh_password")
    required = (_expand_path(str(key), {}),) if key else ()
    return _resolve(name, host, tuple(args), _config_file(args), password=password, required=required)


def _var(v: Mapping[str, Any], *names: str) -> Any:
    """The value of one connection option whose variables are `names`, in the order the ssh connection plugin
    lists them: as in Ansible's config manager, the last one that is set wins."""
    return next((v[n] for n in reversed(names) if v.get(n) not in (None, "")), None)


def _split(name: str, var: str, value: Any) -> list[str]:
    """Ansible splits ssh args with shlex (its ssh connection's `_split_ssh_args`)."""
    if not value:
        return []
    try:
        return shlex.split(str(value))
    except ValueError as e:
        raise UsageError(f"{name}: cannot parse {var} {value!r}: {e}") from e


def _config_file(args: Sequence[str]) -> str | None:
    """The `-F FILE` among ssh options, which OpenSSH passes on to the ssh it runs for a ProxyJump hop."""
    words = iter(args)
    for w in words:
        if w == "--" or not w.startswith("-"):
            return None
        for j, c in enumerate(w[1:], 2):
            if c in _OPTS_WITH_ARG:
                value = w[j:] or next(words, "")
                if c == "F":
                    return value
                break
    return None


def _resolve(name: str, host: str, args: tuple[str, ...], config: str | None, *, password: Any = None,
             required: tuple[str, ...] = (), origin: str | None = None, depth: int = 0) -> SSHTarget:
    g = ssh_g(name, (*args, "--", host))
    hostname, user, port = _one(g, "hostname", host), _one(g, "user", getpass.getuser()), _port(name, _one(g, "port"))
    _check_host(name, "HostName", hostname)
    _check_user(name, user)
    tokens = {"%h": hostname, "%p": str(port), "%r": user, "%n": host, "%%": "%"}
    path_tokens = {**tokens, "%d": str(Path.home()), "%u": getpass.getuser(), "%i": str(os.getuid()),
                   "%L": socket.gethostname().split(".")[0], "%l": socket.gethostname(),
                   "%k": _one(g, "hostkeyalias", host)}
    proxy = _one(g, "proxycommand", "none")
    jump = _one(g, "proxyjump", "none")
    timeout = _one(g, "connecttimeout", "none")
    return SSHTarget(
        name=name,
        hostname=hostname,
        user=user,
        port=port,
        key_files=tuple(_expand_path(k, path_tokens) for k in g.get("identityfile", [])),
        required_keys=required,
        identities_only=_one(g, "identitiesonly") == "yes",
        identity_agent=_agent(_one(g, "identityagent", "SSH_AUTH_SOCK")),
        proxy_command=_expand(proxy, tokens, "ProxyCommand") if proxy != "none" else None,
        proxy_jump=_jump(origin or name, jump, config, depth) if jump != "none" and proxy == "none" else None,
        known_hosts=tuple(_one(g, "userknownhostsfile", "~/.ssh/known_hosts").split()),
        global_known_hosts=tuple(_one(g, "globalknownhostsfile", "").split()),
        host_key_alias=_one(g, "hostkeyalias") or None,
        strict_host_key_checking=_one(g, "stricthostkeychecking", "ask"),
        timeout=float(timeout) if timeout != "none" else float(DEFAULT_TIMEOUT),
        password=str(password) if password else None,
    )


def _jump(origin: str, spec: str, config: str | None, depth: int) -> SSHTarget:
    """The last hop of ProxyJump `spec`, reached through the hops before it: what OpenSSH does with
    `ssh [-l USER] [-p PORT] [-J EARLIER,HOPS] [-F CONFIG] -W '[%h]:%p' HOST`."""
    if depth >= MAX_JUMPS:
        raise UsageError(f"{origin}: more than {MAX_JUMPS} ProxyJump hops (a loop in the ssh config?)",
                         "exclude the jump host from its own ProxyJump, e.g. `Host * !bastion`")
    *earlier, last = spec.split(",")
    user, host, port = _hop(origin, last)
    args = [*(["-l", user] if user else []), *(["-p", port] if port else []),
            *(["-J", ",".join(earlier)] if earlier else []), *(["-F", config] if config else [])]
    _check_host(origin, "ProxyJump", host)
    return _resolve(f"{host} (jump host of {origin})", host, tuple(args), config, origin=origin, depth=depth + 1)


def _hop(name: str, hop: str) -> tuple[str | None, str, str | None]:
    """`[user@]host[:port]` or `ssh://[user@]host[:port]` -> user, host, port."""
    rest = hop.removeprefix("ssh://")
    user, _, hostport = rest.rpartition("@")
    if hostport.startswith("["):
        host, _, tail = hostport[1:].partition("]")
        port = tail.removeprefix(":") or None
    else:
        host, _, p = hostport.partition(":")
        port = p or None
    if not host:
        raise UsageError(f"{name}: bad ProxyJump hop {hop!r}", "use [user@]host[:port]")
    return user or None, host, port


@functools.lru_cache(maxsize=256)
def ssh_g(name: str, args: tuple[str, ...]) -> dict[str, list[str]]:
    """`ssh -G ARGS` parsed: option (lowercase) -> its values. Cached: it takes ~50 ms and a run connects to
    each host several times."""
    ssh = shutil.which("ssh")
    if ssh is None:
        raise ConfigError("the OpenSSH client `ssh` is not installed on this machine",
                          "install openssh-client: safeapply asks `ssh -G` how to reach each host")
    try:
        proc = subprocess.run([ssh, "-G", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(f"{name}: `ssh -G` failed: {e}") from e
    if proc.returncode != 0:
        why = [ln for ln in proc.stderr.splitlines() if "Pseudo-terminal" not in ln] or [f"exit {proc.returncode}"]
        raise UsageError(f"{name}: OpenSSH rejects the SSH options: {why[-1].strip()}",
                         "fix ansible_ssh_common_args/ansible_ssh_extra_args or the ssh config")
    out: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        out.setdefault(key, []).append(value)
    return out


def _one(g: Mapping[str, list[str]], key: str, default: str = "") -> str:
    return g[key][0] if g.get(key) else default


def _agent(value: str) -> str | None:
    """IdentityAgent -> the agent's socket path, or None for no agent."""
    if value == "none":
        return None
    if value == "SSH_AUTH_SOCK" or value.startswith("$"):
        return os.environ.get(value.lstrip("$").strip("{}")) or None
    return value


def _expand(text: str, tokens: Mapping[str, str], option: str) -> str:
    """OpenSSH's percent_expand: each %x replaced once, left to right; an unknown token is an error."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "%":
            tok = text[i:i + 2]
            if tok not in tokens:
                raise UsageError(f"{option} {text!r}: unknown or unsupported token {tok!r}",
                                 f"safeapply knows {' '.join(sorted(tokens))}")
            out.append(tokens[tok])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _expand_path(path: str, tokens: Mapping[str, str]) -> str:
    return str(Path(_expand(path, tokens, "IdentityFile") if tokens else path).expanduser())


def _port(host: str, value: Any) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = -1
    if not 0 < port < 65536:
        raise UsageError(f"{host}: SSH port {value!r} is not a port number", "fix ansible_port or Port")
    return port


# OpenSSH 9.6+ refuses these in host and user names given on its command line: they would reach a shell through
# ProxyCommand's %h/%r (ssh.c valid_hostname / valid_ruser).
_BAD_HOST_CHARS = set("'`\"$\\;&<>|(){}")
_BAD_USER_CHARS = set("'`\";&<>|(){}")


def _check_host(name: str, what: str, host: str) -> None:
    if host.startswith("-") or any(c in _BAD_HOST_CHARS or c.isspace() or not c.isprintable() for c in host):
        raise UsageError(f"{name}: {what} {host!r} contains characters OpenSSH refuses in a host name",
                         "fix ansible_host (a name or an address, no spaces or shell characters)")


def _check_user(name: str, user: str) -> None:
    bad = (user.startswith("-") or user.endswith("\\") or any(c in _BAD_USER_CHARS for c in user)
           or any(c.isspace() and user[i + 1:i + 2] == "-" for i, c in enumerate(user)))
    if bad:
        raise UsageError(f"{name}: user {user!r} contains characters OpenSSH refuses in a user name",
                         "fix ansible_user / User")
