"""After apply: is each host still healthy? -> VerifyReport (a list of findings; empty means verified).

* SSH still reachable over a NEW connection (not the one Ansible or the scan used).
* A rescan compared with the pre-apply scan: units newly failed, units restart-looping (NRestarts rising
  over a settle window), units/ports/containers the plan expected that are not running or listening.
* User checks declared beside the playbook (`site.yml` -> `site.verify.yml`), run ON the target:

      checks:
        - tcp: 8080                       # or {tcp: 8080, host: 127.0.0.1}
        - http: http://127.0.0.1:8080/    # status: 200 by default
          status: 200
        - command: "test -s /etc/app.conf"
        - unit: nginx.service             # must be active

The comparison is pure (`compare`) so that it is tested on recorded scans; `verify_host` does the I/O.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from safeapply import remote
from safeapply.errors import SafeapplyError, UsageError
from safeapply.intent.ports import parse_publish
from safeapply.plan import port_holders
from safeapply.probe.model import Unit, exposed_ports
from safeapply.scan import HostState, scan_host
from safeapply.transport.base import Transport

DEFAULT_SETTLE = 3.0


@dataclass(frozen=True)
class Finding:
    host: str
    kind: str  # ssh | unit-failed | restart-loop | unit-not-active | port-not-listening | container | check
    subject: str
    message: str


@dataclass(frozen=True)
class Expectation:
    """What the plan says the playbook starts: these must be running/listening afterwards."""

    units: frozenset[str] = frozenset()
    ports: frozenset[tuple[str, int]] = frozenset()  # (proto, port)
    containers: frozenset[str] = frozenset()  # container names
    named_containers: frozenset[str] = frozenset()  # every container the plan names, any state: the run's
    way_in: tuple[str, ...] = ()  # why SSH may change after the play (proof of reach waits for --settle)


@dataclass
class VerifyReport:
    host: str
    findings: list[Finding] = field(default_factory=list)
    checks_run: int = 0
    after: HostState | None = None
    way_in: list[str] = field(default_factory=list)  # the changed way-in tasks the proof of reach waited --settle for

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "ok": self.ok, "checks_run": self.checks_run, "way_in": self.way_in,
                "findings": [asdict(f) for f in self.findings]}


# ---- user checks -------------------------------------------------------------------------------------

def checks_file_for(playbook: Path) -> Path:
    return playbook.with_name(f"{playbook.stem}.verify.yml")


def load_checks(path: Path) -> list[dict[str, Any]]:
    """Parse and validate the user checks file; a missing file means no user checks."""
    if not path.exists():
        return []
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from e
    checks = doc.get("checks", []) if isinstance(doc, dict) else None
    if not isinstance(checks, list):
        raise UsageError(f"{path}: expected a mapping with a `checks:` list")
    return [_check(path, i, c) for i, c in enumerate(checks, 1)]


def _check(path: Path, i: int, c: Any) -> dict[str, Any]:
    kinds = [k for k in ("tcp", "http", "command", "unit") if isinstance(c, dict) and k in c]
    if len(kinds) != 1:
        raise UsageError(f"{path}: check {i} needs exactly one of tcp, http, command, unit", f"got {c!r}")
    kind = kinds[0]
    out: dict[str, Any] = {"kind": kind, "target": str(c[kind]), "timeout": float(c.get("timeout", 5))}
    if kind == "tcp":
        try:
            out["port"] = int(c["tcp"])
        except (TypeError, ValueError):
            raise UsageError(f"{path}: check {i}: tcp needs a port number, got {c['tcp']!r}") from None
        out["host"] = str(c.get("host", "127.0.0.1"))
    if kind == "http":
        out["status"] = int(c.get("status", 200))
    return out


def run_checks(transport: Transport, checks: list[dict[str, Any]]) -> list[Finding]:
    """Run the user checks on the host (`safeapply.target.checks`); a finding for each that failed."""
    if not checks:
        return []
    results = json.loads(remote.call(transport, "checks.run", sudo=True, stdin=json.dumps(checks).encode(),
                                     timeout=300))
    return [Finding(transport.name, "check", f"{c['kind']} {c['target']}", msg)
            for c, msg in zip(checks, results, strict=True) if msg]


# ---- comparison (pure) -------------------------------------------------------------------------------

def compare(before: HostState, after: HostState, settled: HostState | None,
            expect: Expectation = Expectation()) -> list[Finding]:
    """Findings from the pre-apply scan, the post-apply scan and (optional) one after the settle window."""
    last = settled or after
    out: list[Finding] = []
    for u in last.units:
        old = before.unit(u.name)
        if u.failed and not (old and old.failed):
            out.append(Finding(last.host, "unit-failed", u.name, f"{u.name} is failed ({u.sub})"))
        elif _looping(u.name, before, after, settled) and not (old and old.restart_looping):
            out.append(Finding(last.host, "restart-loop", u.name,
                               f"{u.name} is restart-looping (NRestarts {u.n_restarts}, {u.active}/{u.sub})"))
    out += _expected(last, expect)
    return out


def _looping(name: str, before: HostState, after: HostState, settled: HostState | None) -> bool:
    u = (settled or after).unit(name)
    if u is None:
        return False
    if u.sub == "auto-restart":
        return True
    mid = after.unit(name)
    if settled is not None and mid is not None and u.n_restarts > mid.n_restarts:
        return True
    old = before.unit(name)
    return u.n_restarts >= (old.n_restarts if old else 0) + 3


def _expected(state: HostState, expect: Expectation) -> list[Finding]:
    out: list[Finding] = []
    for name in sorted(expect.units):
        u = state.unit(name)
        if u is None or u.active != "active":
            got = f"{u.active}/{u.sub}" if u else "not loaded"
            out.append(Finding(state.host, "unit-not-active", name, f"{name} should be running: {got}"))
    listening = {(x.proto, x.port) for x in state.listeners}
    for proto, port in sorted(expect.ports):
        if (proto, port) not in listening:
            out.append(Finding(state.host, "port-not-listening", f"{port}/{proto}",
                               f"nothing listens on {port}/{proto}, though the playbook should bind it"))
    running = {c.name for c in state.containers if c.running}
    for name in sorted(expect.containers - running):
        out.append(Finding(state.host, "container", name, _not_running(state, name)))
    return out


def _not_running(state: HostState, name: str) -> str:
    """Why a container is not running: its state and exit code, who holds the ports it binds on the host
    (published, or its image's with the host's network), and its last log line."""
    c = next((c for c in state.containers if c.name == name), None)
    if c is None:
        q = next((q for q in state.quadlets if q.container_name == name), None)
        if q is None:
            return f"container {name} does not exist"
        # quadlet runs it with --rm: gone once it exited; its file still says which host ports it wanted
        ports = [(s.proto, s.port) for p in q.publish for s in parse_publish(p)]
        ports += exposed_ports(q.exposed) if q.network == "host" else []
        return (f"container {name} does not exist ({q.unit} runs it with --rm: it exited or never started; "
                f"journalctl -u {q.unit})" + _held(state, name, sorted(set(ports))))
    msg = f"container {name} is not running ({c.state}, exit code {c.exit_code})" + _held(state, name, c.host_ports)
    last = [line.strip() for line in c.log_tail.splitlines() if line.strip()]
    return msg + (f"; its last log line: {last[-1][:200]}" if last else "")


def _held(state: HostState, name: str, ports: list[tuple[str, int]]) -> str:
    """"; 9090/tcp is held by ..." for each of `ports` (proto, port) that something other than `name` holds."""
    held = {(h.proto, h.port): h.text for h in port_holders(state) if h.container != name}
    return "".join(f"; {port}/{proto} is held by {held[(proto, port)]}" for proto, port in ports
                   if (proto, port) in held)


def needs_settle(before: HostState, after: HostState, expect: Expectation) -> bool:
    """Wait and rescan only when the run touched units: a unit started, restarted or changed state."""
    return bool(expect.units or expect.containers or touched_units(before, after))


def touched_units(before: HostState, after: HostState) -> list[Unit]:
    """Services that started, restarted or changed state between the two scans (our own switch's aside)."""
    old = {u.name: (u.active, u.main_pid, u.n_restarts) for u in before.units}
    out = []
    for u in after.units:
        if u.kind != "service" or u.name.startswith("safeapply-"):  # our own dead-man's switch units
            continue
        now = (u.active, u.main_pid, u.n_restarts)
        if (u.name in old and old[u.name] != now) or (u.name not in old and u.active != "inactive"):
            out.append(u)
    return out


def settle_left(before: HostState, after: HostState, expect: Expectation, settle: float) -> float:
    """How long to wait before the second scan: until every unit the run touched (or expects) has been in its
    state for `settle` seconds, by the host's own clock (a unit restarted by a handler 2 s before the scan
    leaves 1 s of a 3 s window). Containers carry no such time: the whole window."""
    if expect.containers:
        return settle
    units = {u.name: u for u in touched_units(before, after)}
    units.update({n: u for n in expect.units if (u := after.unit(n)) is not None})
    ages = [float(u.since_change_s) for u in units.values()]
    if not ages or min(ages) < 0:
        return settle
    return min(settle, max(0.0, settle - min(ages)))


# ---- doing it ----------------------------------------------------------------------------------------

def verify_host(reconnect: Callable[[], Transport], before: HostState, expect: Expectation = Expectation(),
                checks: list[dict[str, Any]] | None = None, settle: float = DEFAULT_SETTLE, *,
                current: Transport | None = None, not_before: float | None = None,
                handover: Callable[[Transport], None] | None = None, changed: bool = True) -> VerifyReport:
    """Prove that a new SSH connection works after apply; rescan (twice across the settle window if units
    moved) and run the user's checks.

    With `current` (the connection kept open beside apply) the scans use it while the new connection is
    being opened; if it died, they use the new one. With `not_before` (a time.monotonic() value) nothing
    starts before then. A host the play changed nothing on (`changed` False) gets the proof of reach and one
    scan compared with the pre-run one: no settle window. The new connection is closed at the end, or, when it
    lasted to the end and `handover` is given, passed to it still open (it confirms the dead-man's switch)."""
    report = VerifyReport(before.host)
    if not_before is not None:  # the playbook touched the way in: give a delayed lockout time to show
        time.sleep(max(0.0, not_before - time.monotonic()))
    look = partial(_look, before=before, expect=expect, checks=checks or [], settle=settle if changed else 0.0)
    side = ThreadPoolExecutor(max_workers=1)
    try:
        early = side.submit(look, current) if current is not None else None
        try:
            fresh = reconnect()
        except SafeapplyError as e:  # not waiting for `early`: the old connection may hang in a black hole
            report.findings.append(Finding(before.host, "ssh", "ssh", f"new SSH connection failed: {e}"))
            return report
        try:
            seen = early.result() if early is not None else "no connection"
            if isinstance(seen, str):
                seen = look(fresh)
        except BaseException:
            fresh.close()
            raise
    finally:
        side.shutdown(wait=False, cancel_futures=True)
    if isinstance(seen, str):
        report.findings.append(Finding(before.host, "ssh", "ssh", f"lost the host during verification: {seen}"))
        fresh.close()
        return report
    report.after, report.checks_run = seen.after, seen.checks_run
    report.findings += seen.findings
    if handover is not None:
        handover(fresh)
    else:
        fresh.close()
    return report


@dataclass
class _Seen:
    after: HostState
    findings: list[Finding]
    checks_run: int


def _look(t: Transport, before: HostState, expect: Expectation, checks: list[dict[str, Any]],
          settle: float) -> _Seen | str:
    """Scan and check over `t`; the error instead if the connection failed meanwhile."""
    try:
        after = scan_host(t)
        settled = None
        if settle > 0 and needs_settle(before, after, expect):
            time.sleep(settle_left(before, after, expect, settle))
            settled = scan_host(t)
        return _Seen(settled or after, compare(before, after, settled, expect) + run_checks(t, checks), len(checks))
    except SafeapplyError as e:  # e.g. a firewall rule that cuts the connection a moment after apply
        return str(e)
