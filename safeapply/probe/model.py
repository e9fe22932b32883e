"""What a scan finds on a host: units, listening sockets, containers, quadlets and a few facts.

Every record is a frozen dataclass that round-trips through JSON (`HostState.to_dict` / `from_dict`):
the run pipeline stores scans and verification compares them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

T = TypeVar("T")
PORT_PROXIES = ("docker-proxy", "conmon", "rootlessport")  # processes that hold a container's published port


@dataclass(frozen=True)
class Unit:
    """A loaded systemd unit (service, socket or timer), from `systemctl show` properties."""

    name: str
    load: str
    active: str
    sub: str
    enabled: str  # UnitFileState: enabled, disabled, static, masked, "" when none
    main_pid: int = 0
    n_restarts: int = 0
    fragment_path: str = ""
    listen: tuple[str, ...] = ()  # socket units: "Stream 0.0.0.0:22" style entries
    description: str = ""
    since_change_s: float = field(default=-1.0, compare=False)  # from its last state change to the scan (-1: unknown)

    @property
    def kind(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def failed(self) -> bool:
        return self.active == "failed"

    @property
    def restart_looping(self) -> bool:
        return self.sub == "auto-restart" or (self.n_restarts >= 3 and self.active != "active")


@dataclass(frozen=True)
class Owner:
    pid: int
    process: str  # the kernel's comm, as `ss -p` shows it
    cmdline: tuple[str, ...] = ()
    unit: str | None = None  # the systemd unit whose cgroup holds the process


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket or an unconnected UDP socket (what `ss -ltun` lists)."""

    proto: str  # tcp | udp
    address: str  # as the kernel reports it: 0.0.0.0, ::, 127.0.0.1, ::ffff:1.2.3.4
    port: int
    owners: tuple[Owner, ...] = ()  # sorted by pid; empty when not visible (not root)

    @property
    def family(self) -> int:
        return 6 if ":" in self.address else 4

    @property
    def owner(self) -> Owner | None:
        """The process to name in messages: the first one that is not PID 1 (socket activation)."""
        real = [o for o in self.owners if o.pid != 1]
        pool = real or list(self.owners)
        return pool[0] if pool else None


@dataclass(frozen=True)
class PortBinding:
    proto: str
    host_ip: str  # "" means every address
    host_port: int
    container_port: int


@dataclass(frozen=True)
class Container:
    engine: str  # docker | podman
    id: str
    name: str
    image: str
    state: str  # running, exited, created, ...
    ports: tuple[PortBinding, ...] = ()
    restart_policy: str = ""
    network_mode: str = ""
    image_id: str = ""
    pid: int = 0  # the container's main process on the host (0: not running)
    conmon_pid: int = 0  # podman's monitor: it holds the published ports (port reservation)
    exit_code: int = 0
    create_command: tuple[str, ...] = ()  # podman: the command line that created it (for rollback)
    exposed: tuple[str, ...] = ()  # stopped containers: the image's exposed ports, "9090/tcp"
    log_tail: str = ""  # stopped containers: the last lines they logged
    unit: str = ""  # podman: the systemd unit it runs under (label PODMAN_SYSTEMD_UNIT: quadlet, generate systemd)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def host_ports(self) -> list[tuple[str, int]]:
        """(proto, port) it binds on the host: published ports, or with the host's network its image's ports."""
        out = [(p.proto, p.host_port) for p in self.ports]
        return sorted(set(out + (exposed_ports(self.exposed) if self.network_mode == "host" else [])))


def exposed_ports(exposed: tuple[str, ...]) -> list[tuple[str, int]]:
    """(proto, port) of an image's exposed ports ("9090/tcp", "53/udp")."""
    out = []
    for e in exposed:
        port, _, proto = e.partition("/")
        if port.isdigit():
            out.append((proto or "tcp", int(port)))
    return out


@dataclass(frozen=True)
class Quadlet:
    path: str
    unit: str  # the generated service name: foo.container -> foo.service
    image: str = ""
    container_name: str = ""
    publish: tuple[str, ...] = ()  # PublishPort= values as written
    network: str = ""
    exposed: tuple[str, ...] = ()  # Network=host: its image's exposed ports, "9090/tcp"


@dataclass(frozen=True)
class Facts:
    hostname: str = ""
    os_id: str = ""
    os_version: str = ""
    os_pretty: str = ""
    kernel: str = ""
    init: str = ""
    systemd_running: bool = False
    disk_free: dict[str, int | None] = field(default_factory=dict)
    bindv6only: bool = False
    python: str = ""
    root: bool = False


@dataclass(frozen=True)
class HostState:
    host: str
    units: tuple[Unit, ...] = ()
    listeners: tuple[Listener, ...] = ()
    containers: tuple[Container, ...] = ()
    quadlets: tuple[Quadlet, ...] = ()
    facts: Facts = field(default_factory=Facts)
    notes: tuple[str, ...] = ()  # e.g. "docker: not installed"

    def unit(self, name: str) -> Unit | None:
        return next((u for u in self.units if u.name == name), None)

    def container_by_id(self, cid: str) -> Container | None:
        return next((c for c in self.containers if cid and (c.id.startswith(cid) or cid in c.id)), None)

    def container_of(self, listener: Listener) -> Container | None:
        """The container behind a listening socket: its process or podman's conmon (by PID), a port proxy
        (docker-proxy) for a port it publishes, or the cgroup scope systemd gave it (docker-ID.scope,
        libpod-ID.scope, libpod-conmon-ID.scope)."""
        for o in listener.owners:
            found = next((c for c in self.containers if c.running and o.pid in (c.pid, c.conmon_pid)), None)
            if found is None and o.process in PORT_PROXIES:
                found = next((c for c in self.containers if c.running and (listener.proto, listener.port) in
                              {(p.proto, p.host_port) for p in c.ports}), None)
            m = re.match(r"(?:docker|libpod|libpod-conmon)-([0-9a-f]{12,})\.scope$", o.unit or "")
            found = found or (self.container_by_id(m.group(1)) if m else None)
            if found:
                return found
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HostState:
        return cls(
            host=d["host"],
            units=tuple(_load(Unit, u) for u in d.get("units", ())),
            listeners=tuple(
                _load(Listener, {**x, "owners": tuple(_load(Owner, o) for o in x.get("owners", ()))})
                for x in d.get("listeners", ())
            ),
            containers=tuple(
                _load(Container, {**c, "ports": tuple(_load(PortBinding, p) for p in c.get("ports", ())),
                                  "create_command": tuple(c.get("create_command", ())),
                                  "exposed": tuple(c.get("exposed", ()))})
                for c in d.get("containers", ())
            ),
            quadlets=tuple(_load(Quadlet, q) for q in d.get("quadlets", ())),
            facts=_load(Facts, d.get("facts", {})),
            notes=tuple(d.get("notes", ())),
        )


def _load(cls: type[T], d: dict[str, Any]) -> T:
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    vals = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names}
    return cls(**vals)
