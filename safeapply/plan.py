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

from safeapply.intent.model import Bind, ContainerOp, Intent, Note, TaskRef, UnitOp
from safeapply.probe.model import HostState, Listener

BLOCKING = "blocking"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    host: str
    severity: str  # blocking | warning
    code: str  # port-in-use | port-twice | duplicate-service | unit-failed | unit-restart-loop | unknown-port
    #            | not-analysed | check-mode-false | check-stopped (plan --check)
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
    try:
        fa, ipa = _family_addr(addr_a)
        fb, ipb = _family_addr(addr_b)
    except ValueError:  # a host name where an address was expected: it may resolve to anything
        return True
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


# ---- the timeline: a port is taken when its owner starts, and freed when the play stops its holder ----------

AT_BOOT = 1 << 30  # "at the next boot": after every task of the play


@dataclass(frozen=True)
class Start:
    """The moment a bind's owner starts listening: `at` is the task order (AT_BOOT: only at the next boot)."""

    bind: Bind
    at: int
    task: TaskRef  # the task that starts the listener (a start/restart task, a handler, or the enable)


@dataclass(frozen=True)
class Holder:
    """Something that holds a port on the host before the play: a listening socket or a published port."""

    proto: str
    address: str | None
    port: int
    kind: str  # unit | container | process
    name: str  # unit or container name ("" for a bare process)
    text: str  # for messages: "old.service (python3 PID 41)"
    fix: str
    unit: str | None = None
    pid: int | None = None
    process: str | None = None
    container: str | None = None


def _unit_ops(intent: Intent, unit: str) -> list[UnitOp]:
    return sorted((u for u in intent.units if u.unit == unit), key=lambda u: u.task.order)


def _unit_start(intent: Intent, unit: str, after: int) -> tuple[int, TaskRef] | None:
    """When the play (re)starts `unit` at or after task `after`: a start/restart, else an enable (next boot)."""
    ops = [u for u in _unit_ops(intent, unit) if u.task.order >= after]
    started = next((u for u in ops if u.op in ("start", "restart")), None)
    if started:
        return started.task.order, started.task
    enabled = next((u for u in ops if u.op == "enable"), None)
    return (AT_BOOT, enabled.task) if enabled else None


def starts(intent: Intent) -> list[Start]:
    """Every bind at the moment its owner starts, in task order. A unit the play writes but never starts or
    enables binds nothing during this run; a container task starts its container itself (quadlets: their
    service's start)."""
    out: list[Start] = []
    quadlet_units = {c.name: c.unit for c in intent.containers if c.unit}
    for b in intent.binds:
        unit = b.owner if b.owner_kind == "unit" else quadlet_units.get(b.owner, "")
        if not unit:
            out.append(Start(b, b.task.order, b.task))
            continue
        found = _unit_start(intent, unit, b.task.order)
        if found is None and b.owner.endswith(".socket"):
            found = _unit_start(intent, b.owner, b.task.order)
        if found is not None:
            out.append(Start(b, found[0], found[1]))
    return sorted(out, key=lambda s: s.at)


def _unit_held_at(intent: Intent, unit: str, at: int, held: bool, since: int = -1) -> bool:
    """Is `unit` running at task order `at`, given `held` at `since`? At the next boot only an enabled unit
    comes back: a play's disable or mask releases it then."""
    for u in _unit_ops(intent, unit):
        if since < u.task.order < at or (at == AT_BOOT and u.task.order < at):
            if u.op in ("stop", "mask") and at != AT_BOOT:
                held = False
            elif u.op in ("start", "restart") and at != AT_BOOT:
                held = True
            elif at == AT_BOOT and u.op in ("disable", "mask"):
                held = False
            elif at == AT_BOOT and u.op == "enable":
                held = True
    return held


def _container_held_at(intent: Intent, name: str, at: int, since: int = -1) -> bool:
    """A container the play removes, stops or recreates (same name) before `at` no longer holds its ports."""
    return not any(c.name == name and since < c.task.order <= at for c in intent.containers)


def _socket_unit(state: HostState, listener: Listener) -> str | None:
    for u in state.units:
        if u.kind == "socket" and u.active == "active" and any(
                str(listener.port) in entry.split(" ", 1)[0].rsplit(":", 1)[-1:] for entry in u.listen):
            return u.name
    return None


def port_holders(state: HostState) -> list[Holder]:
    """What holds each port on the host: the unit, process or container (also by published ports)."""
    out: list[Holder] = []
    for lst in state.listeners:
        owner = lst.owner
        container = state.container_of(lst)
        unit = owner.unit if owner else None
        if owner and owner.pid == 1:
            unit = _socket_unit(state, lst) or unit
        pid, proc = (owner.pid, owner.process) if owner else (None, None)
        if container:
            out.append(Holder(lst.proto, lst.address, lst.port, "container", container.name,
                              f"container {container.name} ({container.image})",
                              f"remove or stop container {container.name} first, or publish another host port",
                              None, pid, proc, container.name))
            continue
        desc = f"{owner.process} PID {owner.pid}" if owner else "an unknown process (scan as root to see it)"
        fix = (f"stop and disable {unit} before that task (systemd: name={unit} state=stopped enabled=false), "
               "or use another port") if unit else "stop that process first, or use another port"
        out.append(Holder(lst.proto, lst.address, lst.port, "unit" if unit else "process", unit or "",
                          f"{unit} ({desc})" if unit else desc, fix, unit, pid, proc))
    for c in state.containers:  # published ports are visible even when no userland proxy listens
        for p in c.ports if c.running else ():
            out.append(Holder(p.proto, p.host_ip or None, p.host_port, "container", c.name,
                              f"container {c.name} ({c.image})", f"remove container {c.name} first, or use "
                              "another host port", container=c.name))
    return out


def _holder_released(intent: Intent, h: Holder, s: Start) -> bool:
    if h.name and h.name == s.bind.owner:
        return True  # the same unit or container, reconfigured or recreated: it hands the port to itself
    if h.kind == "unit":
        # systemd stops the units a starting unit names in Conflicts=
        return h.name in intent.conflicts.get(s.bind.owner, ()) or not _unit_held_at(intent, h.name, s.at, True)
    if h.kind == "container":
        return not _container_held_at(intent, h.name, s.at)
    return False


def _starts_text(s: Start) -> str:
    b = s.bind
    when = " (at the next boot)" if s.at == AT_BOOT else ""
    return f"{s.task} starts {b.owner or 'an unknown owner'}{when}, which binds {b.address or '*'}:{b.port}"


def _port_findings(intent: Intent, state: HostState) -> list[Finding]:
    out: list[Finding] = []
    v6only = state.facts.bindv6only
    holders = port_holders(state)
    for s in starts(intent):
        b = s.bind
        for h in holders:
            if h.port != b.port or not overlaps(b.proto, b.address, h.proto, h.address, v6only) or \
                    _holder_released(intent, h, s):
                continue
            at = h.address if h.address is not None else "*"
            out.append(Finding(
                intent.host, WARNING if b.owner_kind == "unknown" else BLOCKING, "port-in-use",
                f"{b.proto}/{b.port}: {_starts_text(s)}, but {h.text} still listens on {at}:{h.port} then",
                h.fix, s.task, b.port, b.proto, h.unit, h.pid, h.process, h.container))
            break
    return out


def _intent_held_at(intent: Intent, earlier: Start, s: Start) -> bool:
    """Does the listener `earlier` started still hold its port when `s` starts?"""
    b = earlier.bind
    if b.owner_kind == "unit":
        return _unit_held_at(intent, b.owner, s.at, True, since=earlier.at)
    if b.owner_kind == "container":
        return _container_held_at(intent, b.owner, s.at, since=earlier.at)
    return True


def _twice_findings(intent: Intent, v6only: bool) -> list[Finding]:
    out = []
    timeline = starts(intent)
    for i, a in enumerate(timeline):
        for s in timeline[i + 1:]:
            ba, bs = a.bind, s.bind
            if ba.port != bs.port or (ba.owner and ba.owner == bs.owner) or \
                    not overlaps(ba.proto, ba.address, bs.proto, bs.address, v6only) or \
                    not _intent_held_at(intent, a, s):
                continue
            severity = BLOCKING if "unknown" not in (ba.owner_kind, bs.owner_kind) else WARNING
            out.append(Finding(intent.host, severity, "port-twice",
                               f"{bs.proto}/{bs.port}: {_starts_text(s)}, but {a.task} started "
                               f"{ba.owner or '?'} on it and it still holds it then",
                               f"give one of them another port, or stop {ba.owner or 'the first'} before "
                               f"{s.task.name!r}", s.task, bs.port, bs.proto))
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
    """Unknown ports, and every task the plan could not analyse (why, where): a warning — under
    `strict_plan` a blocking one when the task could start, install or publish a listener."""
    out = [Finding(intent.host, WARNING, n.kind, n.message, "make the value known before the run, or check "
                   "by hand", n.task) for n in intent.notes if n.kind == "unknown-port"]
    by_task: dict[int, list[Note]] = {}
    for n in intent.notes:
        if n.unanalysed:
            by_task.setdefault(n.task.order, []).append(n)
    for notes in by_task.values():  # one finding per task, every reason in it
        strict = intent.strict_plan and any(n.port_bearing for n in notes)
        why = "; ".join(dict.fromkeys(f"{n.kind}: {n.message}" for n in notes))
        out.append(Finding(intent.host, BLOCKING if strict else WARNING, "not-analysed",
                           f"{notes[0].task} not analysed — {why}",
                           "make it known before the run (a variable, -e, a static include), check it by hand"
                           + ("" if strict else ", or use --strict-plan to block on this"), notes[0].task))
    return out


def plan(intent: Intent, state: HostState) -> list[Finding]:
    """All findings for one host, blocking first."""
    findings = (_port_findings(intent, state) + _twice_findings(intent, state.facts.bindv6only)
                + _duplicate_service(intent, state) + _unit_health(intent, state) + _notes(intent))
    return sorted(findings, key=lambda f: (f.severity != BLOCKING, f.task.order if f.task else -1))


def verdict(intent: Intent, findings: list[Finding]) -> str:
    """One line that never says "no collisions" without saying what was not looked at."""
    k = intent.not_analysed
    n = max(intent.tasks - k, 0)
    bad = blocking(findings)
    head = f"{len(bad)} blocking finding(s)" if bad else "no collisions"
    if not k:
        return f"{head} among the {intent.tasks} task(s) analysed"
    return f"{head} among the {n} of {intent.tasks} task(s) analysed; {k} not analysed"


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
