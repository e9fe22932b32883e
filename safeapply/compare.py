"""Is a host as it was before the run? One pure comparison of pre-run and current state, used by verify,
rollback and the dead-man's switch's confirmation (each phrases what differs as human lines; empty: same).

    state_diff           units (running/enabled), listeners and containers, both ways (rollback's check)
    scan_differences     what ran or listened before and does not now (a self-restore's check)
    listing_differences  a root listing (type, mode, owner, hash, xattrs, ACLs ...) path by path
"""

from __future__ import annotations

from typing import Any

from safeapply.scan import HostState, Unit

UNIT_KINDS = ("service", "socket", "timer")
COMPARED = ("t", "m", "u", "g", "h", "l", "x", "mt", "rd", "lk", "err")
_SWITCH_PREFIX = "safeapply-deadman-"  # the run's own dead-man's switch: its guard disarms it, not rollback


def units_of(state: HostState, loaded_only: bool = True) -> dict[str, Unit]:
    """Services, sockets and timers by name — not the run's own dead-man's switch (its step disarms it)."""
    return {u.name: u for u in state.units if u.kind in UNIT_KINDS and not u.name.startswith(_SWITCH_PREFIX)
            and not (loaded_only and u.load == "not-found")}


def on_demand(name: str, before: HostState, after: HostState) -> bool:
    """A service that its own socket starts when a client connects and that may exit when idle (docker.service
    behind docker.socket, podman's netavark-dhcp-proxy.service): whether it runs at a given moment is nobody's
    doing, so it is never a difference and never started or stopped by a rollback — while that socket listens."""
    if not name.endswith(".service"):
        return False
    sock = name[: -len(".service")] + ".socket"
    return all((u := s.unit(sock)) is not None and u.active == "active" for s in (before, after))


def state_diff(before: HostState, after: HostState, others: frozenset[str] = frozenset(),
               other_containers: frozenset[str] = frozenset()) -> list[str]:
    """Human lines for what differs in units, listeners and containers (empty: same). Units in `others`
    (somebody else's timers and sessions) and containers named in `other_containers` (somebody else's) are not
    the run's doing and do not count."""
    out: list[str] = []
    old, new = units_of(before), units_of(after)
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name), new.get(name)
        if name in others:
            continue
        sa = (a.active, a.enabled) if a else ("absent", "")
        sb = (b.active, b.enabled) if b else ("absent", "")
        if a and b and on_demand(name, before, after):
            sa, sb = ("active", a.enabled), ("active", b.enabled)  # running or not is up to its socket
        if _norm(sa) != _norm(sb):
            out.append(f"unit {name}: was {'/'.join(filter(None, sa))}, now {'/'.join(filter(None, sb))}")
    la, lb = _listeners(before, other_containers), _listeners(after, other_containers)
    out += [f"listener {p} {a}:{n} is gone" for p, a, n in sorted(la - lb)]
    out += [f"listener {p} {a}:{n} is new" for p, a, n in sorted(lb - la)]
    ca = {(c.name, c.running, c.image_id or c.image) for c in before.containers if c.name not in other_containers}
    cb = {(c.name, c.running, c.image_id or c.image) for c in after.containers if c.name not in other_containers}
    out += [f"container {n}: was {'running' if r else 'stopped'} ({i[:12]}), now differs"
            for n, r, i in sorted(ca - cb)]
    out += [f"container {n}: new or changed" for n, _, _ in sorted(cb - ca) if n not in {x for x, _, _ in ca}]
    return out


def _listeners(state: HostState, skip: frozenset[str]) -> set[tuple[str, str, int]]:
    """(proto, address, port) of each listening socket, but those held by a container named in `skip`."""
    return {(x.proto, x.address, x.port) for x in state.listeners
            if not skip or (c := state.container_of(x)) is None or c.name not in skip}


def _norm(state: tuple[str, str]) -> tuple[str, str]:
    """Only running vs not running counts: inactive and a transient `activating` of a timer job are alike."""
    active, enabled = state
    return ("up" if active in ("active", "reloading") else "down", enabled)


def listing_differences(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[str]:
    out = [f"{p}: missing after restore" for p in sorted(set(before) - set(after))]
    out += [f"{p}: not there before the run" for p in sorted(set(after) - set(before))]
    for p in sorted(set(before) & set(after)):
        keys = [k for k in COMPARED if before[p].get(k) != after[p].get(k)]
        if keys:
            out.append(f"{p}: {', '.join(keys)} differ")
    return out


def scan_differences(before: HostState, after: HostState) -> list[str]:
    """Services running and TCP ports listening before the run that are not now."""
    def running(s: HostState) -> set[str]:
        return {u.name for u in s.units if u.kind == "service" and u.active == "active" and u.sub == "running"
                and not on_demand(u.name, before, after)}

    def ports(s: HostState) -> set[tuple[str, int]]:
        return {(li.proto, li.port) for li in s.listeners if li.proto == "tcp"}

    out = [f"service {u} was running before the run and is not now" for u in sorted(running(before) - running(after))]
    out += [f"{proto}/{port} was listening before the run and is not now"
            for proto, port in sorted(ports(before) - ports(after))]
    return out
