"""Hosts from Ansible's own inventory code (INI, YAML, directories, ansible.cfg defaults, --limit patterns),
and how to reach each one: a Transport built from its connection variables (the transport package reads
~/.ssh/config and the ssh args: `safeapply.transport.sshconfig`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from safeapply.ansible_context import check_sources
from safeapply.ansible_errors import ansible_warnings, first_line
from safeapply.errors import NoHostsMatched, UsageError
from safeapply.hostvars import CONNECTION_VARS
from safeapply.transport.base import Transport
from safeapply.transport.become import Become

__all__ = ["CONNECTION_VARS", "Host", "ansible_warnings", "check_sources", "load", "resolve_hosts"]


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
        """A connection to the host, which becomes root (for safeapply's own work) as its become variables say
        and runs python with its ansible_python_interpreter."""
        become = Become.from_vars(self.vars)
        interpreter = self.vars.get("ansible_python_interpreter")
        python = str(interpreter) if interpreter else None
        if self.is_local:
            from safeapply.transport.local import LocalTransport

            return LocalTransport(self.name, become, python)
        from safeapply.transport.ssh import SSHTransport
        from safeapply.transport.sshconfig import ssh_target

        t = SSHTransport(ssh_target(self.name, self.vars), accept_new_host_keys)
        t.become, t.interpreter = become, python
        return t


_check_sources = check_sources  # the name callers used before


def load(sources: Sequence[str] | None) -> tuple[Any, Any, Any]:
    """The invocation's InventoryManager/VariableManager/DataLoader for these sources (ansible.cfg's default if
    none), from the one Ansible context (`safeapply.ansible_context`): vault secrets included."""
    from safeapply.ansible_context import get

    ctx = get(sources or None)
    return ctx.inventory, ctx.variable_manager, ctx.loader


def resolve_hosts(sources: Sequence[str] | None, pattern: str = "all", limit: str | None = None) -> list[Host]:
    """Hosts matching `pattern` (and `limit`), with their connection variables templated the way Ansible would
    (vault secrets, -e) and the connection/become options of the command line and ansible.cfg folded in at
    Ansible's precedence (`safeapply.hostvars`)."""
    from ansible.errors import AnsibleError

    from safeapply.ansible_context import get
    from safeapply.hostvars import connection_vars

    ctx = get(sources or None)
    inv = ctx.inventory
    try:
        inv.subset(limit)
        hosts = inv.get_hosts(pattern)
    except AnsibleError as e:
        raise UsageError(f"bad host pattern {pattern!r}: {first_line(e)}") from e
    if not hosts:
        where = f" (limit {limit!r})" if limit else ""
        raise NoHostsMatched(f"no host matched {pattern!r}{where}", "check the pattern and the inventory (-i)")
    out = []
    for h in hosts:
        hv = ctx.host_vars(h)
        conn = connection_vars(ctx, hv)
        conn.setdefault("inventory_hostname", h.name)
        out.append(Host(h.name, conn, frozenset(hv)))
    return out
