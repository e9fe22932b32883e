"""Pure parsers: the probe's raw JSON -> `HostState`. Tested on captured real output in tests/scan_data/."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterable, Mapping
from typing import Any

from safeapply.probe.model import Container, Facts, HostState, Listener, Owner, PortBinding, Quadlet, Unit
from safeapply.redact import redact_argv

UNIT_SUFFIXES = (".service", ".scope", ".socket", ".mount", ".timer", ".slice")


def parse_systemctl_show(text: str, now_us: int = 0) -> tuple[Unit, ...]:
    """`systemctl show -p ... UNITS` output: blank-line separated KEY=VALUE blocks, one per unit. `now_us`: the
    host's monotonic clock when it ran (0: unknown), for each unit's time since its last state change."""
    units = []
    for block in re.split(r"\n\s*\n", text.strip()):
        props: dict[str, list[str]] = {}
        for line in block.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                props.setdefault(key, []).append(value)
        if props.get("Id"):
            units.append(_unit(props, now_us))
    return tuple(sorted(units, key=lambda u: u.name))


def _unit(p: Mapping[str, list[str]], now_us: int) -> Unit:
    def one(key: str) -> str:
        return p.get(key, [""])[-1]

    return Unit(
        name=one("Id"), load=one("LoadState"), active=one("ActiveState"), sub=one("SubState"),
        enabled=one("UnitFileState"), main_pid=_int(one("MainPID")), n_restarts=_int(one("NRestarts")),
        fragment_path=one("FragmentPath"), listen=tuple(v for v in p.get("Listen", []) if v),
        description=one("Description"), since_change_s=_since(now_us, _int(one("StateChangeTimestampMonotonic"))),
    )


def _since(now_us: int, then_us: int) -> float:
    return round(max(0, now_us - then_us) / 1e6, 3) if now_us and then_us else -1.0


def _int(s: Any) -> int:
    try:
        return int(s or 0)
    except (TypeError, ValueError):
        return 0


def decode_address(hexaddr: str) -> tuple[str, int]:
    """`0100007F:1F90` -> ("127.0.0.1", 8080). IPv6 is four little-endian 32-bit words."""
    addr, _, port = hexaddr.partition(":")
    raw = bytes.fromhex(addr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1]), int(port, 16)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words), int(port, 16)


def parse_proc_net(table: str, text: str) -> list[tuple[str, str, int, str]]:
    """Rows of /proc/net/{tcp,tcp6,udp,udp6} that `ss -l` lists: (proto, address, port, inode)."""
    proto = table.rstrip("6")
    state = "0A" if proto == "tcp" else "07"
    rows = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) > 9 and f[3] == state:
            addr, port = decode_address(f[1])
            rows.append((proto, addr, port, f[9]))
    return rows


def unit_from_cgroup(text: str) -> str | None:
    """The innermost systemd unit in /proc/PID/cgroup (v2 `0::` line, else v1 `name=systemd`)."""
    lines = [ln.split(":", 2) for ln in text.splitlines() if ln.count(":") >= 2]
    path = next((ln[2] for ln in lines if ln[0] == "0" and ln[1] == ""), None)
    path = path or next((ln[2] for ln in lines if ln[1] == "name=systemd"), "")
    for part in reversed(path.strip().split("/")):
        if part.endswith(UNIT_SUFFIXES) and not part.endswith(".slice"):
            return part
    return None


def owner_of(pid: int, info: Mapping[str, Any]) -> Owner:
    """The one place a process enters a HostState: its command line redacted (scans are stored and shown)."""
    argv = [str(a) for a in info.get("cmdline") or ()]
    return Owner(pid=pid, process=str(info.get("comm", "")), cmdline=redact_argv(argv),
                 unit=unit_from_cgroup(str(info.get("cgroup", ""))))


def build_listeners(rows: Iterable[tuple[str, str, int, str]], inode_pids: Mapping[str, list[int]],
                    owners: Mapping[int, Owner]) -> tuple[Listener, ...]:
    merged: dict[tuple[str, str, int], set[int]] = {}
    for proto, addr, port, inode in rows:
        merged.setdefault((proto, addr, port), set()).update(inode_pids.get(inode, ()))
    return tuple(
        Listener(proto, addr, port, tuple(owners[p] for p in sorted(pids) if p in owners))
        for (proto, addr, port), pids in sorted(merged.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1]))
    )


def parse_inspect(engine: str, text: str, stopped: Mapping[str, Any] | None = None) -> tuple[Container, ...]:
    """`docker inspect` / `podman inspect` JSON (a list of container objects); `stopped`: the probe's logs and
    image ports of containers that are not running, by ID."""
    return tuple(sorted((_container(engine, c, (stopped or {}).get(str(c.get("Id", ""))) or {})
                         for c in json.loads(text or "[]")), key=lambda c: c.name))


def _container(engine: str, c: Mapping[str, Any], why: Mapping[str, Any]) -> Container:
    hc = c.get("HostConfig") or {}
    cfg = c.get("Config") or {}
    st = c.get("State") or {}
    try:
        exposed = sorted(json.loads(why.get("exposed") or "null") or {})
    except ValueError:
        exposed = []
    bindings = (c.get("NetworkSettings") or {}).get("Ports") or hc.get("PortBindings") or {}
    ports = []
    for key, binds in sorted(bindings.items()):
        cport, _, proto = key.partition("/")
        for b in binds or ():
            if b.get("HostPort"):
                ports.append(PortBinding(proto or "tcp", b.get("HostIp") or "", int(b["HostPort"]), int(cport)))
    return Container(
        engine=engine, id=str(c.get("Id", "")), name=str(c.get("Name", "")).lstrip("/"),
        image=str(cfg.get("Image") or c.get("ImageName") or c.get("Image", "")),
        state=str((c.get("State") or {}).get("Status", "")).lower(),
        ports=tuple(sorted(set(ports), key=lambda p: (p.proto, p.host_port, p.host_ip))),
        restart_policy=str((hc.get("RestartPolicy") or {}).get("Name", "")),
        network_mode=str(hc.get("NetworkMode", "")),
        image_id=_image_id(c), pid=_int(st.get("Pid")), conmon_pid=_int(st.get("ConmonPid")),
        exit_code=_int(st.get("ExitCode")), create_command=tuple(str(a) for a in cfg.get("CreateCommand") or ()),
        exposed=tuple(str(e) for e in exposed), log_tail=str(why.get("logs") or ""),
        unit=str((cfg.get("Labels") or {}).get("PODMAN_SYSTEMD_UNIT") or ""),
    )


def _image_id(c: Mapping[str, Any]) -> str:
    """The image's ID (docker: `sha256:` + hex in Image; podman: the hex in Image)."""
    return str(c.get("Image", "")).removeprefix("sha256:")


def parse_containers(engine: str, raw: Mapping[str, Any]) -> tuple[tuple[Container, ...], str | None]:
    """Containers of one engine, and a note when the engine is absent or its daemon does not answer."""
    ps = raw.get("ps") or {}
    if ps.get("rc") == 127:
        return (), f"{engine}: not installed"
    if ps.get("rc") != 0:
        err = (ps.get("err") or "").strip().splitlines()
        return (), f"{engine}: not available ({err[-1] if err else 'rc ' + str(ps.get('rc'))})"
    inspect = raw.get("inspect")
    if not inspect:
        return (), None
    if inspect.get("rc") != 0:
        return (), f"{engine}: inspect failed ({(inspect.get('err') or '').strip()[:200]})"
    return parse_inspect(engine, inspect.get("out", ""), raw.get("stopped")), None


def parse_quadlet(path: str, text: str, images: Mapping[str, Any] | None = None) -> Quadlet:
    """A quadlet file's [Container] keys; `images`: the probe's exposed ports of host-network quadlets' images."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and not line.startswith(("#", ";")) and section == "Container":
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    image = values.get("Image", [""])[-1]
    try:
        exposed = sorted(json.loads(str((images or {}).get(image) or "null")) or {})
    except ValueError:
        exposed = []
    return Quadlet(
        path=path, unit=f"{stem}.service", image=image, exposed=tuple(str(e) for e in exposed),
        container_name=values.get("ContainerName", [f"systemd-{stem}"])[-1],
        publish=tuple(values.get("PublishPort", [])), network=values.get("Network", [""])[-1],
    )


def parse_os_release(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def parse_facts(raw: Mapping[str, Any]) -> Facts:
    osr = parse_os_release(raw.get("os_release", ""))
    disk = raw.get("disk") or {}
    return Facts(
        hostname=raw.get("hostname", ""), os_id=osr.get("ID", ""), os_version=osr.get("VERSION_ID", ""),
        os_pretty=osr.get("PRETTY_NAME", ""), kernel=raw.get("kernel", ""), init=raw.get("init", ""),
        systemd_running=bool(raw.get("systemd_running")),
        disk_free={k: (v or {}).get("free") for k, v in sorted(disk.items())},
        bindv6only=raw.get("bindv6only") == "1", python=raw.get("python", ""), root=raw.get("euid") == 0,
    )


def parse_probe(host: str, raw: Mapping[str, Any]) -> HostState:
    """The whole probe document -> HostState."""
    notes: list[str] = []
    units_raw = raw.get("units") or {}
    now_us = _int(raw.get("monotonic_us"))
    units = parse_systemctl_show(units_raw.get("out", ""), now_us) if units_raw.get("rc") == 0 else ()
    if units_raw.get("rc") != 0:
        notes.append(f"systemd: {(units_raw.get('err') or '').strip() or 'systemctl failed'}")
    rows = [r for t, text in sorted((raw.get("proc_net") or {}).items()) for r in parse_proc_net(t, text or "")]
    owners = {int(p): owner_of(int(p), info) for p, info in (raw.get("processes") or {}).items()}
    listeners = build_listeners(rows, raw.get("socket_owners") or {}, owners)
    containers: list[Container] = []
    for engine in ("docker", "podman"):
        found, note = parse_containers(engine, (raw.get("containers") or {}).get(engine) or {})
        containers.extend(found)
        if note:
            notes.append(note)
    facts = parse_facts(raw.get("facts") or {})
    if not facts.root:
        notes.append("not root: sockets of other users' processes show no owner")
    quadlets = tuple(parse_quadlet(p, t or "", raw.get("quadlet_images"))
                     for p, t in sorted((raw.get("quadlets") or {}).items()))
    return HostState(host=host, units=units, listeners=listeners, containers=tuple(containers),
                     quadlets=quadlets, facts=facts, notes=tuple(notes))
