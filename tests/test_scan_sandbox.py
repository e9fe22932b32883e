"""Scan and plan on real sandbox hosts: listeners started as systemd units, checked against `ss` and
`systemctl` run through plain OpenSSH (ground truth independent of our transport and probe)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Sandbox

from safeapply.cli import main
from safeapply.probe.parse import parse_probe
from safeapply.scan import probe_source, scan_host, scan_local
from safeapply.transport.local import LocalTransport

pytestmark = pytest.mark.sandbox
EXAMPLES = Path(__file__).parent.parent / "playbooks" / "examples"

LISTENERS = {
    "hs-web1": "python3 -m http.server 8081 --bind 127.0.0.2",
    "hs-web2": "python3 -m http.server 8081 --bind 127.0.0.3",
    "hs-web6": "python3 -m http.server 8082 --bind ::",
    "hs-udp4": "python3 -c 'import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
               " s.bind((\"0.0.0.0\",6969)); time.sleep(1e9)'",
    "hs-udp6": "python3 -c 'import socket,time; s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM);"
               " s.bind((\"::1\",5353)); time.sleep(1e9)'",
}


@pytest.fixture(scope="module")
def host(sandbox_factory: Callable[[str], Sandbox]) -> Sandbox:
    sb = sandbox_factory("scan")
    for unit, cmd in LISTENERS.items():
        sb.sh(f"systemd-run --unit={unit} {cmd}")
    sb.sh("systemd-run --unit=hs-broken sh -c 'exit 3' || true")
    sb.sh("for i in $(seq 50); do ss -Hltnu | grep -q ':5353 ' && ss -Hltnu | grep -q ':8082 ' && exit 0; "
          "sleep 0.1; done; exit 1")
    return sb


def ss_truth(sb: Sandbox) -> dict[tuple[str, str, int], set[tuple[str, int]]]:
    out: dict[tuple[str, str, int], set[tuple[str, int]]] = {}
    for line in sb.sh("ss -Hltnup").splitlines():
        f = line.split()
        addr, _, port = f[4].rpartition(":")
        addr = {"*": "::", "[::]": "::"}.get(addr, addr.strip("[]"))
        users = set(re.findall(r'\("([^"]+)",pid=(\d+)', line))
        out.setdefault((f[0], addr, int(port)), set()).update((n, int(p)) for n, p in users)
    return out


def test_listeners_match_ss(host: Sandbox) -> None:
    with host.transport() as t:
        state = scan_host(t)
    truth = ss_truth(host)
    got = {(x.proto, x.address, x.port): {(o.process, o.pid) for o in x.owners} for x in state.listeners}
    assert got == truth
    assert ("udp", "::1", 5353) in got and ("tcp", "127.0.0.3", 8081) in got
    units = {(x.address, x.port): x.owner.unit for x in state.listeners if x.owner}
    assert units[("127.0.0.2", 8081)] == "hs-web1.service" and units[("::1", 5353)] == "hs-udp6.service"
    web1 = next(x for x in state.listeners if x.address == "127.0.0.2")
    assert web1.owner is not None and "http.server" in web1.owner.cmdline


def test_units_match_systemctl(host: Sandbox) -> None:
    with host.transport() as t:
        state = scan_host(t)
    listed = {}
    for line in host.sh("systemctl list-units --all --plain --no-legend --type=service,socket,timer").splitlines():
        f = line.split()
        listed[f[0]] = (f[1], f[2], f[3])
    got = {u.name: (u.load, u.active, u.sub) for u in state.units}
    assert got == listed
    for unit in ("hs-web1.service", "ssh.service"):
        pid = int(host.sh(f"systemctl show -p MainPID --value {unit}"))
        u = state.unit(unit)
        assert u is not None and u.main_pid == pid and pid > 0
    assert state.unit("ssh.service").enabled == "enabled"  # type: ignore[union-attr]
    assert state.unit("hs-broken.service").failed  # type: ignore[union-attr]
    assert state.containers == () and "docker: not installed" in state.notes
    assert state.facts.init == "systemd" and state.facts.os_id == "debian" and state.facts.disk_free["/var"]


def test_paramiko_and_plain_openssh_probe_agree(host: Sandbox) -> None:
    with host.transport() as t:
        ours = scan_host(t)
    raw = json.loads(host.sh("python3 -", stdin=probe_source().encode()))
    theirs = parse_probe(ours.host, raw)
    assert theirs.listeners == ours.listeners
    assert {u.name for u in theirs.units} == {u.name for u in ours.units}
    assert theirs.notes == ours.notes and theirs.facts.os_pretty == ours.facts.os_pretty


def test_probe_and_in_process_agree_on_this_machine() -> None:
    # Read-only on the machine running the tests: the probe through LocalTransport vs psutil in-process.
    a = scan_host(LocalTransport(), in_process=False)
    b = scan_local()
    assert a.listeners == b.listeners and a.units == b.units and a.containers == b.containers
    assert a.notes == b.notes and a.facts.os_pretty == b.facts.os_pretty and a.facts.init == b.facts.init


def test_scan_cli(host: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", host.name, "-i", str(host.inventory), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert any(x["port"] == 6969 and x["proto"] == "udp" for x in data["hosts"][host.name]["listeners"])
    assert main(["scan", host.name, "-i", str(host.inventory)]) == 0
    assert "hs-web1.service" in capsys.readouterr().out


def test_seed_scenario_blocks_naming_unit_and_pid(sandbox_factory: Callable[[str], Sandbox],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    sb = sandbox_factory("seed")
    inv = str(sb.inventory)
    apply = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", inv,
                            str(EXAMPLES / "seed-01-agent-unit.yml")], capture_output=True, text=True, check=False)
    assert apply.returncode == 0, apply.stdout + apply.stderr
    sb.sh("for i in $(seq 50); do ss -Hltn | grep -q ':9090 ' && exit 0; sleep 0.1; done; exit 1")
    pid = int(sb.sh("systemctl show -p MainPID --value node_exporter.service"))

    assert main(["plan", str(EXAMPLES / "seed-02-agent-container.yml"), "-i", inv, "--json"]) == 17
    report = json.loads(capsys.readouterr().out)["hosts"][sb.name]
    port = [f for f in report["findings"] if f["code"] == "port-in-use"]
    assert len(port) == 1 and port[0]["severity"] == "blocking"
    assert (port[0]["unit"], port[0]["pid"], port[0]["port"]) == ("node_exporter.service", pid, 9090)

    for clean in ("clean-agent-container.yml", "clean-web.yml", "clean-role-vars.yml", "seed-01-agent-unit.yml"):
        assert main(["plan", str(EXAMPLES / clean), "-i", inv, "--json"]) == 0, clean
        assert json.loads(capsys.readouterr().out)["hosts"][sb.name]["findings"] == [], clean


def test_a_units_time_in_its_state_comes_from_the_hosts_clock(host: Sandbox) -> None:
    """Issue 15 item 1: verify's settle window counts from each unit's last state change (systemd's monotonic
    timestamp against the host's monotonic clock read by the probe)."""
    host.sh("systemctl restart hs-web1.service")
    with host.transport() as t:
        state = scan_host(t)
    web, ssh = state.unit("hs-web1.service"), state.unit("ssh.service")
    assert web is not None and 0 <= web.since_change_s < 10
    assert ssh is not None and ssh.since_change_s >= web.since_change_s
