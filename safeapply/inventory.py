"""Hosts from Ansible's own inventory code (INI, YAML, directories, ansible.cfg defaults, --limit patterns),
and how to reach each one: a Transport built from its connection variables (the transport package reads
~/.ssh/config and the ssh args: `safeapply.transport.sshconfig`)."""

from __future__ import annotations

import contextlib
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
    vars: dict[str, Any] = field(repr=False)  # the connection variables (CONNECTION_VARS), templated
    var_names: frozenset[str] = frozenset()  # every variable Ansible's VariableManager gives the host

    @property
    def connection(self) -> str:
        return str(self.vars.get("ansible_connection") or "ssh")

    @property
    def is_local(self) -> bool:
        return self.connection in ("local", "ansible.builtin.local")

    def connect(self, accept_new_host_keys: bool = False) -> Transport:
        if self.is_local:
            from safeapply.transport.local import LocalTransport

            return LocalTransport(self.name)
        from safeapply.transport.ssh import SSHTransport
        from safeapply.transport.sshconfig import ssh_target

        return SSHTransport(ssh_target(self.name, self.vars), accept_new_host_keys)


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
        out.append(Host(h.name, conn, frozenset(hv)))
    return out
