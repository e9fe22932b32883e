"""Where an SSH connection goes: Ansible's connection variables, the OpenSSH options in
ansible_ssh_common_args/extra_args, and ~/.ssh/config (or `-F FILE`) merged into one `SSHTarget`.

Precedence as with ansible-playbook + OpenSSH: Ansible variables, then -o options, then the config file.
"""

from __future__ import annotations

import getpass
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import paramiko

from safeapply.errors import UsageError
from safeapply.transport.ssh import SSHTarget


def ssh_target(name: str, hostvars: Mapping[str, Any]) -> SSHTarget:
    """The SSHTarget of inventory host `name` with connection variables `hostvars` (ansible_host, ansible_port,
    ansible_user, ansible_ssh_private_key_file, ansible_ssh_common_args, ...)."""
    v = hostvars
    args = parse_ssh_args(f"{v.get('ansible_ssh_common_args') or ''} {v.get('ansible_ssh_extra_args') or ''}")
    alias = str(v.get("ansible_host") or name)
    cfg = _config(Path(args.get("configfile", "~/.ssh/config")).expanduser(), alias)
    merged = {**cfg, **args}
    key = v.get("ansible_ssh_private_key_file") or v.get("ansible_private_key_file")
    keys = [str(key)] if key else _as_list(merged.get("identityfile"))
    known = _as_list(merged.get("userknownhostsfile"))
    known = [w for k in known for w in k.split()]
    return SSHTarget(
        name=name,
        hostname=str(merged.get("hostname") or alias),
        user=str(v.get("ansible_user") or merged.get("user") or getpass.getuser()),
        port=_port(name, v.get("ansible_port") or merged.get("port") or 22),
        key_files=tuple(keys if key or "identityfile" in args else [k for k in keys if Path(k).expanduser().exists()]),
        proxy_command=merged.get("proxycommand") if merged.get("proxycommand", "none") != "none" else None,
        known_hosts=tuple(known),
        host_key_alias=merged.get("hostkeyalias"),
        timeout=float(merged.get("connecttimeout") or 10),
        password=v.get("ansible_password") or v.get("ansible_ssh_pass"),
    )


def _config(path: Path, alias: str) -> dict[str, Any]:
    """The ssh_config options that apply to `alias` (lowercased keys), or none when the file does not exist."""
    if not path.exists():
        return {}
    return dict(paramiko.SSHConfig.from_path(str(path)).lookup(alias))


def parse_ssh_args(args: str) -> dict[str, str]:
    """OpenSSH command-line options in ansible_ssh_common_args/extra_args -> lowercased ssh_config keys.
    The first value of a key wins, as in OpenSSH."""
    opts: dict[str, str] = {}
    flags = {"-F": "configfile", "-i": "identityfile", "-p": "port", "-l": "user", "-J": "proxyjump"}
    try:
        words = shlex.split(args)
    except ValueError as e:
        raise UsageError(f"cannot parse ssh args {args!r}: {e}") from e
    i = 0
    while i < len(words):
        w = words[i]
        flag, val = (w[:2], w[2:]) if len(w) > 2 and w[:2] in (*flags, "-o") else (w, None)
        if flag in (*flags, "-o") and val is None and i + 1 < len(words):
            i += 1
            val = words[i]
        if flag == "-o" and val:
            k, _, v = val.replace("=", " ", 1).partition(" ")
            opts.setdefault(k.strip().lower(), v.strip())
        elif flag in flags and val:
            opts.setdefault(flags[flag], val)
        i += 1
    return opts


def _port(host: str, value: Any) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = -1
    if not 0 < port < 65536:
        raise UsageError(f"{host}: SSH port {value!r} is not a port number", "fix ansible_port or Port")
    return port


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(x) for x in value] if isinstance(value, list) else [str(value)]
