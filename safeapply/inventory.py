"""Hosts from Ansible's own inventory code (INI, YAML, directories, ansible.cfg defaults, --limit patterns),
and how to reach each one: a Transport built from its connection variables and ~/.ssh/config."""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safeapply.errors import NoHostsMatched, UsageError
from safeapply.transport.base import Transport

# An inventory that does not parse is an error, not a warning followed by "no hosts matched".
os.environ.setdefault("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
os.environ.setdefault("ANSIBLE_HOST_PATTERN_MISMATCH", "ignore")  # we say it ourselves, in one line

CONNECTION_VARS = (
    "ansible_connection", "ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file",
    "ansible_private_key_file", "ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_become",
    "ansible_password", "ansible_ssh_pass", "ansible_python_interpreter",
)


@dataclass(frozen=True)
class Host:
    name: str
    vars: dict[str, Any] = field(repr=False)

    @property
    def connection(self) -> str:
        return str(self.vars.get("ansible_connection") or "ssh")

    @property
    def is_local(self) -> bool:
        return self.connection == "local"

    def connect(self, accept_new_host_keys: bool = False) -> Transport:
        if self.is_local:
            from safeapply.transport.local import LocalTransport

            return LocalTransport(self.name)
        from safeapply.transport.ssh import SSHTransport

        return SSHTransport(ssh_target(self), accept_new_host_keys)


def _check_sources(sources: list[str]) -> None:
    for src in sources:
        if "," not in src and not Path(src).exists():
            raise UsageError(f"inventory {src} does not exist", "pass an existing file or directory to -i")


def load(sources: list[str] | None) -> tuple[Any, Any, Any]:
    """Ansible's InventoryManager/VariableManager/DataLoader for these sources (ansible.cfg's default if none).
    An inventory that does not parse is a UsageError naming the file and the first reason, in one line."""
    from ansible import constants as C
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    srcs = list(sources) if sources else [str(p) for p in C.DEFAULT_HOST_LIST if Path(p).exists()]
    _check_sources(srcs)
    loader = DataLoader()
    with ansible_warnings() as warned:
        try:
            inv = InventoryManager(loader=loader, sources=srcs)
        except AnsibleError as e:
            why = (warned() or [_first_line(e)])[0]
            raise UsageError(f"cannot parse inventory {', '.join(srcs)}: {why}",
                             "fix it, or check it with `ansible-inventory -i SOURCE --list`") from e
    return inv, VariableManager(loader=loader, inventory=inv), loader


@contextlib.contextmanager
def ansible_warnings() -> Iterator[Callable[[], list[str]]]:
    """Keep Ansible's warnings and deprecations off the terminal (they are many lines each). Yields a function
    that returns the innermost reason of each warning so far, one line each."""
    from ansible._internal._display_utils import DeferredWarningContext

    with DeferredWarningContext(variables={}) as ctx:
        yield lambda: [_reason(w.event) for w in ctx.get_warnings()]


def _reason(event: Any) -> str:
    """The first message down the cause chain that says more than 'Failed to parse inventory', with where."""
    chain = [event]
    while chain[-1].chain is not None:
        chain.append(chain[-1].chain.event)
    msg = next((e.msg for e in chain if not e.msg.startswith("Failed to parse")), chain[-1].msg)
    where = next((ln.removeprefix("Origin: ") for e in chain
                  for ln in (e.formatted_source_context or "").splitlines() if ln.startswith("Origin: ")), "")
    return _first_line(Exception(msg)) + (f" ({where})" if where else "")


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def resolve_hosts(sources: list[str] | None, pattern: str = "all", limit: str | None = None) -> list[Host]:
    """Hosts matching `pattern` (and `limit`), with their variables templated the way Ansible would."""
    from ansible.errors import AnsibleError
    from ansible.template import Templar

    inv, vm, loader = load(sources)
    try:
        if limit:
            inv.subset(limit)
        hosts = inv.get_hosts(pattern)
    except AnsibleError as e:
        raise UsageError(f"bad host pattern {pattern!r}: {_first_line(e)}") from e
    if not hosts:
        where = f" (limit {limit!r})" if limit else ""
        raise NoHostsMatched(f"no host matched {pattern!r}{where}", "check the pattern and the inventory (-i)")
    out = []
    for h in hosts:
        hv = vm.get_vars(host=h, include_hostvars=False)
        templar = Templar(loader=loader, variables=hv)
        conn = {k: templar.template(hv[k]) for k in CONNECTION_VARS if k in hv}
        conn.setdefault("inventory_hostname", h.name)
        out.append(Host(h.name, conn))
    return out


def ssh_target(host: Host) -> Any:
    """Merge Ansible's connection variables, ssh args and ~/.ssh/config into an SSHTarget.
    Precedence as with ansible-playbook + OpenSSH: Ansible variables, then -o options, then the config file."""
    import paramiko

    from safeapply.transport.ssh import SSHTarget, parse_ssh_args

    v = host.vars
    args = parse_ssh_args(f"{v.get('ansible_ssh_common_args') or ''} {v.get('ansible_ssh_extra_args') or ''}")
    alias = str(v.get("ansible_host") or host.name)
    cfg_path = Path(args.get("configfile", "~/.ssh/config")).expanduser()
    cfg: dict[str, Any] = {}
    if cfg_path.exists():
        cfg = dict(paramiko.SSHConfig.from_path(str(cfg_path)).lookup(alias))
    merged = {**cfg, **args}
    key = v.get("ansible_ssh_private_key_file") or v.get("ansible_private_key_file")
    keys = [str(key)] if key else _as_list(merged.get("identityfile"))
    known = _as_list(merged.get("userknownhostsfile"))
    known = [w for k in known for w in k.split()]
    return SSHTarget(
        name=host.name,
        hostname=str(merged.get("hostname") or alias),
        user=str(v.get("ansible_user") or merged.get("user") or getpass.getuser()),
        port=_port(host.name, v.get("ansible_port") or merged.get("port") or 22),
        key_files=tuple(keys if key or "identityfile" in args else [k for k in keys if Path(k).expanduser().exists()]),
        proxy_command=merged.get("proxycommand") if merged.get("proxycommand", "none") != "none" else None,
        known_hosts=tuple(known),
        host_key_alias=merged.get("hostkeyalias"),
        timeout=float(merged.get("connecttimeout") or 10),
        password=v.get("ansible_password") or v.get("ansible_ssh_pass"),
    )


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
