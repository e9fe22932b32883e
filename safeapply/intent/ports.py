"""Pure parsers: where a port appears in publish specs, command lines, unit files and config files."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PortSpec:
    proto: str
    address: str | None  # None: every address
    port: int


def norm_address(addr: str | None) -> str | None:
    if addr is None:
        return None
    a = addr.strip().strip("[]")
    if a in ("", "*"):
        return None
    return "127.0.0.1" if a == "localhost" else a


def _range(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def parse_publish(spec: Any) -> list[PortSpec]:
    """docker/podman/quadlet publish syntax: [ip:][hostport:]containerport[/proto]. No host port: none."""
    text = str(spec).strip()
    body, _, proto = text.partition("/")
    proto = (proto or "tcp").lower()
    m = re.fullmatch(r"(?:(\[[0-9a-fA-F:.]*\]|[^:\[\]]*):)?(\d*(?:-\d+)?):(\d+(?:-\d+)?)", body)
    if not m:
        return []  # a bare container port: the engine picks a random host port
    ip, hostports, _ = m.groups()
    if not hostports:
        return []
    return [PortSpec(proto, norm_address(ip), p) for p in _range(hostports)]


def parse_compose_port(item: Any) -> list[PortSpec]:
    """A compose `ports:` entry, short ("8080:80") or long ({published, host_ip, protocol}) syntax."""
    if isinstance(item, dict):
        published = item.get("published")
        if published in (None, ""):
            return []
        return [PortSpec(str(item.get("protocol") or "tcp"), norm_address(item.get("host_ip")), p)
                for p in _range(str(published))]
    return parse_publish(item)


_FLAG_PORT = re.compile(r"^(?:--port|-p|--http-port|--listen-port)$")
_FLAG_ADDR = re.compile(r"^(?:--web\.listen-address|--listen|--listen-address|--bind|--address|--addr)$")
_HOSTPORT = re.compile(r"^(\[[0-9a-fA-F:.]*\]|\d{1,3}(?:\.\d{1,3}){3}|localhost|\*)?:(\d{1,5})$")


def _hostport(token: str) -> PortSpec | None:
    m = _HOSTPORT.match(token.strip("'\""))
    if not m or not 0 < int(m.group(2)) < 65536:
        return None
    return PortSpec("tcp", norm_address(m.group(1)), int(m.group(2)))


def ports_in_command(cmd: str | Iterable[str]) -> list[PortSpec]:
    """Ports in a command line: --port N, -p N, --web.listen-address=ADDR:PORT, --listen ADDR:PORT, :PORT,
    and python's `-m http.server [--bind ADDR] PORT`. A bare `--bind ADDR` applies to the ports found."""
    try:
        tokens = shlex.split(cmd) if isinstance(cmd, str) else [str(t) for t in cmd]
    except ValueError:
        tokens = str(cmd).split()
    found: list[PortSpec] = []
    bind_addr: str | None = None
    http_server = "http.server" in tokens
    skip = False
    for i, tok in enumerate(tokens):
        if skip:
            skip = False
            continue
        flag, eq, value = tok.partition("=")
        if not eq:
            value = tokens[i + 1] if i + 1 < len(tokens) else ""
        if _FLAG_PORT.match(flag) and value.isdigit():
            found.append(PortSpec("tcp", None, int(value)))
            skip = not eq
        elif _FLAG_ADDR.match(flag) or (http_server and flag == "-b"):
            spec = _hostport(value) or (PortSpec("tcp", None, int(value)) if value.isdigit() else None)
            found += [spec] if spec else []
            bind_addr = bind_addr if spec else norm_address(value)
            skip = not eq
        elif not eq and (spec := _hostport(tok)):
            found.append(spec)
        elif http_server and tok.isdigit() and tokens.index("http.server") < i:
            found.append(PortSpec("tcp", None, int(tok)))
    if bind_addr:
        found = [PortSpec(s.proto, s.address or bind_addr, s.port) for s in found]
    return list(dict.fromkeys(found))


_CONF_PATTERNS = (
    re.compile(r"^\s*listen(?:_address)?\s*[=:]?\s*\"?((?:\[[0-9a-fA-F:.]*\]|[0-9.]+|localhost|\*)?:?\d{1,5})\"?"
               r"(?:\s|;|$)", re.IGNORECASE),
    re.compile(r"^\s*(?:http_)?port\s*[=:]\s*\"?(\d{1,5})\"?\s*(?:#.*)?$", re.IGNORECASE),
)


def ports_in_config(text: str) -> list[PortSpec]:
    """`listen 8080;`, `Listen 80`, `listen = "0.0.0.0:9000"`, `port = 5432`, `port: 6379` in a config file."""
    found: list[PortSpec] = []
    for line in text.splitlines():
        for pat in _CONF_PATTERNS:
            m = pat.match(line)
            if not m:
                continue
            value = m.group(1)
            spec = _hostport(value) if ":" in value else PortSpec("tcp", None, int(value))
            if spec and 0 < spec.port < 65536:
                found.append(spec)
            break
    return list(dict.fromkeys(found))


def parse_unit_file(text: str) -> dict[str, list[str]]:
    """A systemd unit file -> {key: [values]} across sections (continuation lines joined)."""
    out: dict[str, list[str]] = {}
    joined = re.sub(r"\\\n\s*", " ", text)
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def ports_in_unit(text: str) -> list[PortSpec]:
    """Ports a unit file makes its service bind: ExecStart flags (a `docker|podman run` there: its published
    ports, or with the host network the ports in the container's command), or a socket unit's Listen* lines."""
    props = parse_unit_file(text)
    found: list[PortSpec] = []
    for cmd in props.get("ExecStart", []):
        line = cmd.lstrip("-@+!:")
        try:
            argv = shlex.split(line)
        except ValueError:
            argv = line.split()
        run = parse_run(argv)
        if run is None:
            found += ports_in_command(argv)
        elif run.host_network:
            found += ports_in_command(run.command)
        else:
            found += [spec for p in run.publish for spec in parse_publish(p)]
    for key, proto in (("ListenStream", "tcp"), ("ListenDatagram", "udp")):
        for value in props.get(key, []):
            spec = PortSpec(proto, None, int(value)) if value.isdigit() else _hostport(value)
            found += [PortSpec(proto, spec.address, spec.port)] if spec else []
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class RunSpec:
    """`docker|podman [container] run ...` read as the engine reads it."""

    engine: str
    name: str
    image: str
    network: str
    publish: tuple[str, ...]
    command: tuple[str, ...]

    @property
    def host_network(self) -> bool:
        return self.network == "host"


# `docker run` / `podman run` options that take no value; every other option takes one (`--opt v` or `--opt=v`)
_RUN_BOOL = frozenset({
    "-d", "--detach", "--rm", "-i", "--interactive", "-t", "--tty", "--privileged", "--init", "--read-only",
    "-P", "--publish-all", "--replace", "--no-healthcheck", "--oom-kill-disable", "--sig-proxy", "-q", "--quiet",
    "--disable-content-trust", "--no-hosts", "--read-only-tmpfs", "--http-proxy", "--env-host", "--rmi",
    "--help", "--use-api-socket", "--systemd"})


# The engines' global options that take a value (`podman --log-level debug run ...`), as their manuals list them;
# any other option before the verb is a flag (`--remote`, `--debug`, `--tls`), and `--opt=value` is one word.
_GLOBAL_VALUED = {
    "podman": frozenset({
        "--log-level", "--url", "-H", "--host", "--connection", "-c", "--identity", "--root", "--runroot",
        "--storage-driver", "--storage-opt", "--cgroup-manager", "--events-backend", "--network-cmd-path",
        "--network-config-dir", "--runtime", "--runtime-flag", "--tmpdir", "--module", "--conmon", "--hooks-dir",
        "--ssh", "--db-backend", "--imagestore", "--volumepath", "--cdi-spec-dir", "--out", "--config"}),
    "docker": frozenset({
        "--context", "-c", "--host", "-H", "--config", "--log-level", "-l", "--tlscacert", "--tlscert",
        "--tlskey"}),
}


def engine_verb(engine: str, rest: list[str]) -> tuple[str, list[str]]:
    """The verb after the engine's global options (`container run` is `run`) and the words after it."""
    valued = _GLOBAL_VALUED[engine]
    i = 0
    while i < len(rest) and rest[i].startswith("-"):
        i += 2 if rest[i] in valued else 1
    if i < len(rest) and rest[i] == "container":
        i += 1
    return (rest[i], rest[i + 1:]) if i < len(rest) else ("", [])


def parse_run(argv: list[str]) -> RunSpec | None:
    """The publish, network, name and image of a `docker|podman run` command line; None when it is not one.
    Forms: -p H:C, -p IP:H:C, -p IP::C, -p [::]:H:C, ranges, /udp, --publish=..., --network host, --net=host."""
    import posixpath

    i = 0
    while i < len(argv) and (posixpath.basename(argv[i]) in ("env", "sudo", "exec") or ("=" in argv[i]
                             and not argv[i].startswith("-"))):
        i += 1  # /usr/bin/env, sudo, VAR=value before the engine
    if i >= len(argv) or posixpath.basename(argv[i]) not in ("docker", "podman"):
        return None
    engine = posixpath.basename(argv[i])
    verb, argv = engine_verb(engine, argv[i + 1:])  # after global options: podman --log-level=x run
    if verb != "run":
        return None
    opts: dict[str, list[str]] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "--":
        key, eq, val = argv[i].partition("=")
        if not eq and key not in _RUN_BOOL and not _short_bools(key):
            val, i = (argv[i + 1] if i + 1 < len(argv) else ""), i + 1
        opts.setdefault(key, []).append(val)
        i += 1
    i += 1 if i < len(argv) and argv[i] == "--" else 0
    image = argv[i] if i < len(argv) else ""
    net = (opts.get("--network") or opts.get("--net") or [""])[-1]
    return RunSpec(engine, (opts.get("--name") or [""])[-1], image, "host" if net == "host" else net,
                   tuple(p for k in ("-p", "--publish") for p in opts.get(k, [])), tuple(argv[i + 1:]))


def _short_bools(key: str) -> bool:
    """`-dit`: a bundle of one-letter options that take no value."""
    return len(key) > 2 and not key.startswith("--") and all(f"-{c}" in _RUN_BOOL for c in key[1:])
