"""Intent vs HostState -> findings (pure). What the playbook will bind or start, against what already runs.

Stable interface:

* `plan(intent, state) -> list[Finding]` — blocking findings stop the run (`PreflightBlocked`, exit 17).
* `expectations(intent) -> Expectations` — the ports, units and containers that should be up after apply
  (for verification).

Socket semantics: same protocol and port and overlapping addresses collide. `0.0.0.0` overlaps every IPv4
address, `::` every IPv6 address and, when the host has `net.ipv6.bindv6only=0`, every IPv4 address too;
two different specific addresses (127.0.0.1 / 127.0.0.2) do not; TCP and UDP never collide. An owner the
playbook stops (or replaces: the same container name, the same unit) earlier in the play is no conflict.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from safeapply.intent.model import Bind, ContainerOp, Intent, TaskRef
from safeapply.probe.model import Container, HostState, Listener

BLOCKING = "blocking"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    host: str
    severity: str  # blocking | warning
    code: str  # port-in-use | port-twice | duplicate-service | unit-failed | unit-restart-loop | unknown-port
    message: str
    fix: str
    task: TaskRef | None = None
    port: int | None = None
    proto: str | None = None
    unit: str | None = None
    pid: int | None = None
    process: str | None = None
    container: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Expectations:
    """What should be running after the apply, for verification."""

    ports: list[Bind] = field(default_factory=list)
    units_active: list[str] = field(default_factory=list)
    units_enabled: list[str] = field(default_factory=list)
    containers_running: list[str] = field(default_factory=list)


def _family_addr(addr: str) -> tuple[int, ipaddress.IPv4Address | ipaddress.IPv6Address | None]:
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.version, (None if ip.is_unspecified else ip)


def overlaps(proto_a: str, addr_a: str | None, proto_b: str, addr_b: str | None, bindv6only: bool) -> bool:
    """Would binding (proto_a, addr_a) fail because (proto_b, addr_b) is bound on the same port?

    `None` is "every address" (docker's default publish: 0.0.0.0 and ::).
    """
    if proto_a != proto_b:
        return False
    if addr_a is None or addr_b is None:
        return True
    fa, ipa = _family_addr(addr_a)
    fb, ipb = _family_addr(addr_b)
    if fa != fb:  # only a dual-stack wildcard crosses families
        v6_wild = (fa == 6 and ipa is None) or (fb == 6 and ipb is None)
        return v6_wild and not bindv6only
    return ipa is None or ipb is None or ipa == ipb


def _norm(name: str) -> str:
    """A service's identity across a unit name and a container image or name: prom/node-exporter:v1 ->
    nodeexporter, node_exporter.service -> nodeexporter."""
    base = name.rsplit("/", 1)[-1].split("@", 1)[0]
    base = re.sub(r"(\.service|:[^:]*)$", "", base)
    return re.sub(r"[-_.]", "", base.lower())


def _stopped_before(intent: Intent, unit: str, order: int) -> bool:
    return bool(intent.unit_ops(unit, ("stop", "mask"), before=order))


def _replaced_container_before(intent: Intent, name: str, order: int) -> bool:
    return any(c.name == name and c.task.order <= order for c in intent.containers)


def _holder_container(state: HostState, listener: Listener) -> Container | None:
    o = listener.owner
    if o and o.unit:
        m = re.match(r"(?:docker|libpod)-([0-9a-f]{12,})\.scope$", o.unit)
        if m:
            return state.container_by_id(m.group(1))
    return None


def _socket_unit(state: HostState, listener: Listener) -> str | None:
    for u in state.units:
        if u.kind == "socket" and u.active == "active" and any(
                str(listener.port) in entry.split(" ", 1)[0].rsplit(":", 1)[-1:] for entry in u.listen):
            return u.name
    return None


def _port_findings(intent: Intent, state: HostState) -> list[Finding]:
    out: list[Finding] = []
    v6only = state.facts.bindv6only
    for b in intent.binds:
        for lst in state.listeners:
            if lst.port != b.port or not overlaps(b.proto, b.address, lst.proto, lst.address, v6only):
                continue
            f = _listener_conflict(intent, state, b, lst)
            if f:
                out.append(f)
                break
        else:
            out += _container_port_conflicts(intent, state, b)
    return out


def _listener_conflict(intent: Intent, state: HostState, b: Bind, lst: Listener) -> Finding | None:
    owner = lst.owner
    container = _holder_container(state, lst)
    unit = owner.unit if owner else None
    if owner and owner.pid == 1:
        unit = _socket_unit(state, lst) or unit
    if container:
        if container.name == b.owner or _replaced_container_before(intent, container.name, b.task.order):
            return None
        holder, fix = f"container {container.name} ({container.image})", \
            f"remove or stop container {container.name} first, or publish another host port"
    else:
        if unit and (unit == b.owner or _stopped_before(intent, unit, b.task.order)):
            return None
        proc = f"{owner.process} PID {owner.pid}" if owner else "an unknown process (scan as root to see it)"
        holder = f"{unit} ({proc})" if unit else proc
        fix = (f"stop and disable {unit} before this task (systemd: name={unit} state=stopped enabled=false), "
               "or use another port") if unit else "stop that process first, or use another port"
    severity = WARNING if b.owner_kind == "unknown" else BLOCKING
    return Finding(
        intent.host, severity, "port-in-use",
        f"{b.proto}/{b.port}: {b.task} binds {b.address or '*'}:{b.port} for {b.owner or 'an unknown owner'}, "
        f"but {holder} already listens on {lst.address}:{lst.port}",
        fix, b.task, b.port, b.proto, unit if not container else None, owner.pid if owner else None,
        owner.process if owner else None, container.name if container else None)


def _container_port_conflicts(intent: Intent, state: HostState, b: Bind) -> list[Finding]:
    """Running containers' published ports (visible even when no userland proxy listens)."""
    for c in state.containers:
        if not c.running or c.name == b.owner or _replaced_container_before(intent, c.name, b.task.order):
            continue
        for p in c.ports:
            if p.host_port == b.port and overlaps(b.proto, b.address, p.proto, p.host_ip or None,
                                                  state.facts.bindv6only):
                return [Finding(intent.host, BLOCKING, "port-in-use",
                                f"{b.proto}/{b.port}: {b.task} binds port {b.port}, but container {c.name} "
                                f"({c.image}) publishes it", f"remove container {c.name} first, or use another "
                                "host port", b.task, b.port, b.proto, container=c.name)]
    return []


def _twice_findings(intent: Intent, v6only: bool) -> list[Finding]:
    out = []
    binds = intent.binds
    for i, a in enumerate(binds):
        for b in binds[i + 1:]:
            if a.port != b.port or (a.owner and a.owner == b.owner) or \
                    not overlaps(a.proto, a.address, b.proto, b.address, v6only):
                continue
            if a.owner_kind == "container" and _replaced_container_before(intent, a.owner, b.task.order) and \
                    any(c.name == a.owner and c.state in ("absent", "stopped") for c in intent.containers):
                continue
            if a.owner_kind == "unit" and _stopped_before(intent, a.owner, b.task.order) and \
                    a.task.order < b.task.order:
                continue
            severity = BLOCKING if "unknown" not in (a.owner_kind, b.owner_kind) else WARNING
            out.append(Finding(intent.host, severity, "port-twice",
                               f"{a.proto}/{a.port}: both {a.task} ({a.owner or '?'}) and {b.task} "
                               f"({b.owner or '?'}) bind it", "give one of them another port", b.task, b.port,
                               b.proto))
    return out


def _duplicate_service(intent: Intent, state: HostState) -> list[Finding]:
    out = []
    for c in intent.containers:
        if c.state in ("absent", "stopped"):
            continue
        keys = {_norm(c.name), _norm(c.image)} - {""}
        for u in state.units:
            if u.kind != "service" or _norm(u.name) not in keys or u.name == c.unit:
                continue
            out += _dup_finding(intent, c, u.name, u.active == "active", u.enabled == "enabled")
    return out


def _dup_finding(intent: Intent, c: ContainerOp, unit: str, active: bool, enabled: bool) -> list[Finding]:
    stopped = _stopped_before(intent, unit, c.task.order)
    disabled = bool(intent.unit_ops(unit, ("disable", "mask")))
    if (stopped or not active) and (disabled or not enabled):
        return []
    severity = BLOCKING if active and not stopped else WARNING
    why = "is running" if active and not stopped else "stays enabled and comes back at boot"
    return [Finding(intent.host, severity, "duplicate-service",
                    f"{c.task} starts {c.name or c.image} as a container ({c.image}), but host unit {unit} {why}",
                    f"stop and disable {unit} before this task, or drop the container", c.task, unit=unit,
                    container=c.name)]


def _unit_health(intent: Intent, state: HostState) -> list[Finding]:
    out, seen = [], set()
    for op in intent.units:
        u = state.unit(op.unit)
        if op.op not in ("start", "restart", "enable") or u is None or u.name in seen:
            continue
        if u.failed or u.restart_looping:
            seen.add(u.name)
            code = "unit-restart-loop" if u.restart_looping else "unit-failed"
            what = f"restart-looping ({u.n_restarts} restarts)" if u.restart_looping else "failed"
            out.append(Finding(intent.host, WARNING, code, f"{op.task} starts {u.name}, which is already {what}",
                               f"look at `journalctl -u {u.name}` first; the playbook may not fix the cause",
                               op.task, unit=u.name, pid=u.main_pid or None))
    return out


def _notes(intent: Intent) -> list[Finding]:
    return [Finding(intent.host, WARNING, n.kind, n.message, "make the value known before the run, or check "
                    "by hand", n.task) for n in intent.notes if n.kind == "unknown-port"]


def plan(intent: Intent, state: HostState) -> list[Finding]:
    """All findings for one host, blocking first."""
    findings = (_port_findings(intent, state) + _twice_findings(intent, state.facts.bindv6only)
                + _duplicate_service(intent, state) + _unit_health(intent, state) + _notes(intent))
    return sorted(findings, key=lambda f: (f.severity != BLOCKING, f.task.order if f.task else -1))


def blocking(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == BLOCKING]


def expectations(intent: Intent) -> Expectations:
    """Ports, units and containers that should be up after the playbook ran on this host."""
    last: dict[str, str] = {}
    enabled: dict[str, bool] = {}
    for op in sorted(intent.units, key=lambda o: o.task.order):
        if op.op in ("start", "restart", "reload", "stop"):
            last[op.unit] = op.op
        if op.op in ("enable", "disable", "mask"):
            enabled[op.unit] = op.op == "enable"
    running: dict[str, bool] = {}
    for c in sorted(intent.containers, key=lambda c: c.task.order):
        running[c.name] = c.state not in ("absent", "stopped", "killed")
    active = sorted(u for u, op in last.items() if op != "stop")
    gone = {u for u, op in last.items() if op == "stop"}
    ports = [b for b in intent.binds if b.owner_kind != "unknown" and b.owner not in gone
             and running.get(b.owner, True)]
    return Expectations(ports, active, sorted(u for u, e in enabled.items() if e),
                        sorted(n for n, r in running.items() if r and n))
