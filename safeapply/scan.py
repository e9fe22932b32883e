"""Scan a host: systemd units, listening sockets, containers, quadlets and facts -> `HostState`.

Stable interface (the run pipeline and verification call these):

* `scan_host(transport) -> HostState` — one probe round trip over any Transport (the probe is the
  `probe.collect` entry of the on-host package, `safeapply/target/probe.py`, run as root when possible). A
  `LocalTransport` is scanned in-process (psutil for sockets) unless `in_process=False`.
* `scan_local(name) -> HostState` — the in-process path; gives the same result as the probe on this host.
* `HostState.to_dict()` / `HostState.from_dict()` — JSON round trip.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from typing import Any

from safeapply import remote
from safeapply.errors import SafeapplyError, SudoError
from safeapply.probe.model import (
    Container,
    Facts,
    HostState,
    Listener,
    Owner,
    PortBinding,
    Quadlet,
    Unit,
)
from safeapply.probe.parse import build_listeners, owner_of, parse_probe
from safeapply.target import probe as agent
from safeapply.transport.base import Transport
from safeapply.transport.become import WrongBecomePassword
from safeapply.transport.local import LocalTransport

__all__ = [
    "Container", "Facts", "HostState", "Listener", "Owner", "PortBinding", "Quadlet", "Unit",
    "probe_source", "scan_host", "scan_local",
]

PROBE_TIMEOUT = 60.0


def probe_source() -> str:
    """The probe's source: it imports nothing but the standard library, so it also runs alone (`python3 -`)."""
    return resources.files("safeapply.target").joinpath("probe.py").read_text()


def run_probe(transport: Transport) -> dict[str, Any]:
    """Run the probe on the host (as root when possible) and return its raw JSON document."""
    try:
        out = remote.call(transport, "probe.collect", sudo=True, timeout=PROBE_TIMEOUT)
    except WrongBecomePassword:
        raise  # a become password that is set but wrong is a mistake to report, not a reason to scan less
    except SudoError:
        out = remote.call(transport, "probe.collect", sudo=False, timeout=PROBE_TIMEOUT)
    try:
        doc: dict[str, Any] = json.loads(out)
    except ValueError as e:
        raise SafeapplyError(f"{transport.name}: the scan probe printed no valid JSON: {e}",
                             "run `python3 -` on the host to check that python3 works") from e
    return doc


def scan_host(transport: Transport, *, in_process: bool | None = None) -> HostState:
    """Scan the host behind `transport`. In-process (psutil) for a LocalTransport unless told otherwise."""
    if in_process is None:
        in_process = isinstance(transport, LocalTransport)
    if in_process:
        return scan_local(transport.name)
    return parse_probe(transport.name, run_probe(transport))


def scan_local(name: str = "localhost") -> HostState:
    """This machine, in-process: psutil for sockets and processes, the probe's own code for the rest."""
    raw = _local_raw_without_sockets()
    state = parse_probe(name, raw)
    return HostState(host=state.host, units=state.units, listeners=_psutil_listeners(),
                     containers=state.containers, quadlets=state.quadlets, facts=state.facts, notes=state.notes)


def _local_raw_without_sockets() -> dict[str, Any]:
    return {
        "version": agent.PROBE_VERSION,
        "monotonic_us": int(time.monotonic() * 1e6),
        "units": agent.systemd_units(),
        "proc_net": {},
        "containers": {e: agent.containers(e) for e in ("docker", "podman")},
        "quadlets": agent.quadlets(),
        "facts": agent.facts(),
    }


def _psutil_listeners() -> tuple[Listener, ...]:
    import socket

    import psutil

    rows: list[tuple[str, str, int, str]] = []
    inode_pids: dict[str, list[int]] = {}
    for i, c in enumerate(psutil.net_connections(kind="inet")):
        tcp = c.type == socket.SOCK_STREAM
        if (tcp and c.status != psutil.CONN_LISTEN) or (not tcp and c.raddr):
            continue
        key = str(i)  # psutil hides inodes: one synthetic key per socket
        ip, port = c.laddr  # type: ignore[misc]  # an (ip, port) pair for inet sockets
        rows.append(("tcp" if tcp else "udp", str(ip), int(port), key))
        if c.pid:
            inode_pids[key] = [c.pid]
    owners = {p: _psutil_owner(p) for ps in inode_pids.values() for p in ps}
    return build_listeners(rows, inode_pids, {p: o for p, o in owners.items() if o is not None})


def _psutil_owner(pid: int) -> Owner | None:
    import psutil

    try:
        proc = psutil.Process(pid)
        cmdline = proc.cmdline()
    except psutil.Error:
        return None
    return owner_of(pid, {"comm": agent.read(f"/proc/{pid}/comm") or "", "cmdline": cmdline,
                          "cgroup": agent.read(f"/proc/{pid}/cgroup") or ""})
