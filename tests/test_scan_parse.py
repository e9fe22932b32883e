"""Parsers of the probe's output, on captured real probe output (tests/scan_data/)."""

from __future__ import annotations

import json
from pathlib import Path

from safeapply.probe.model import HostState, Listener, Owner
from safeapply.probe.parse import (
    decode_address,
    parse_containers,
    parse_inspect,
    parse_probe,
    parse_proc_net,
    parse_quadlet,
    parse_systemctl_show,
    unit_from_cgroup,
)

DATA = Path(__file__).parent / "scan_data"


def _raw(name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((DATA / name).read_text())


def test_bookworm_listeners_match_the_ss_output_taken_with_the_capture() -> None:
    # ss -Hltnup on that host at capture time listed exactly these sockets (see the test below for owners).
    state = parse_probe("cap", _raw("bookworm-listeners.json"))
    got = {(x.proto, x.address, x.port) for x in state.listeners}
    assert got == {("tcp", "0.0.0.0", 22), ("tcp", "::", 22), ("tcp", "127.0.0.2", 8081),
                   ("tcp", "::", 8082), ("udp", "0.0.0.0", 6969)}
    web1 = next(x for x in state.listeners if x.port == 8081)
    assert web1.owner is not None
    assert (web1.owner.process, web1.owner.unit) == ("python3", "web1.service")
    assert web1.owner.cmdline[:3] == ("/usr/bin/python3", "-m", "http.server")
    sshd = next(x for x in state.listeners if x.port == 22)
    assert sshd.owner is not None and sshd.owner.unit == "ssh.service" and sshd.owner.process == "sshd"


def test_bookworm_units_and_facts() -> None:
    state = parse_probe("cap", _raw("bookworm-listeners.json"))
    ssh = state.unit("ssh.service")
    assert ssh is not None
    assert (ssh.load, ssh.active, ssh.sub, ssh.enabled) == ("loaded", "active", "running", "enabled")
    assert ssh.main_pid > 0 and ssh.fragment_path == "/lib/systemd/system/ssh.service"
    broken = state.unit("broken.service")
    assert broken is not None and broken.failed
    journald = state.unit("systemd-journald.socket")
    assert journald is not None and "/run/systemd/journal/stdout (Stream)" in journald.listen
    assert {u.kind for u in state.units} == {"service", "socket", "timer"}
    assert state.facts.os_id == "debian" and state.facts.init == "systemd" and state.facts.root
    assert state.facts.disk_free["/"] and not state.facts.bindv6only
    assert state.containers == () and "docker: not installed" in state.notes


def test_host_without_systemd_and_with_a_dead_docker_daemon_is_no_error() -> None:
    state = parse_probe("dev", _raw("devbox-nosystemd.json"))
    assert state.units == ()
    assert any(n.startswith("systemd:") for n in state.notes)
    assert any(n.startswith("docker: not available") for n in state.notes)
    assert "podman: not installed" in state.notes


def test_state_round_trips_through_json() -> None:
    state = parse_probe("cap", _raw("bookworm-listeners.json"))
    assert HostState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_decode_address() -> None:
    assert decode_address("0100007F:1F90") == ("127.0.0.1", 8080)
    assert decode_address("00000000000000000000000000000000:0016") == ("::", 22)
    assert decode_address("0000000000000000FFFF00000100007F:0050") == ("::ffff:127.0.0.1", 80)
    assert decode_address("00000000000000000000000001000000:0035") == ("::1", 53)


def test_proc_net_keeps_only_listening_tcp_and_unconnected_udp() -> None:
    head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    tcp = head + ("   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 111 1\n"
                  "   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000 0 0 112 1\n")
    udp = head + ("   0: 00000000:0045 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 113 2\n"
                  "   1: 0100007F:0045 0100007F:0035 01 00000000:00000000 00:00000000 00000000 0 0 114 2\n")
    assert parse_proc_net("tcp", tcp) == [("tcp", "127.0.0.1", 8080, "111")]
    assert parse_proc_net("udp", udp) == [("udp", "0.0.0.0", 69, "113")]


def test_unit_from_cgroup() -> None:
    assert unit_from_cgroup("0::/system.slice/node_exporter.service\n") == "node_exporter.service"
    assert unit_from_cgroup("0::/system.slice/docker-4f1c2b.scope\n") == "docker-4f1c2b.scope"
    assert unit_from_cgroup("0::/user.slice/user-0.slice/session-3.scope\n") == "session-3.scope"
    assert unit_from_cgroup("12:pids:/x\n1:name=systemd:/system.slice/cron.service\n") == "cron.service"
    assert unit_from_cgroup("0::/\n") is None


def test_systemctl_show_blocks() -> None:
    text = ("Id=a.socket\nListen=0.0.0.0:2222 (Stream)\nListen=[::]:2222 (Stream)\nActiveState=active\n\n"
            "MainPID=7\nId=b.service\nNRestarts=5\nSubState=auto-restart\nActiveState=activating\n")
    a, b = parse_systemctl_show(text)
    assert a.listen == ("0.0.0.0:2222 (Stream)", "[::]:2222 (Stream)")
    assert b.main_pid == 7 and b.n_restarts == 5 and b.restart_looping


def test_docker_inspect() -> None:
    # Hand-written in docker's documented `inspect` format: no docker daemon runs on this machine.
    running, exited = sorted(parse_inspect("docker", (DATA / "docker-inspect-handwritten.json").read_text()),
                             key=lambda c: c.state, reverse=True)
    assert (running.name, running.image, running.state) == ("node-exporter", "prom/node-exporter:v1.8.2",
                                                             "running")
    assert {(p.host_ip, p.host_port, p.proto) for p in running.ports} == {("0.0.0.0", 9100, "tcp"),
                                                                          ("::", 9100, "tcp")}
    assert running.restart_policy == "unless-stopped" and running.network_mode == "bridge"
    assert exited.ports[0].host_port == 5353 and exited.network_mode == "host"


def test_podman_containers_as_captured_in_a_container_sandbox() -> None:
    # The probe's raw output from podman 4.3 in `sandbox up --containers`: web publishes 8081 (conmon holds
    # it), agent ran with the host's network and exited: its image's port and its last words come along.
    raw = json.loads((DATA / "podman-sandbox-containers.json").read_text())
    (agent, web), note = parse_containers("podman", raw)
    assert note is None and (agent.name, web.name) == ("agent", "web")
    assert web.running and web.conmon_pid > 0 and web.pid > 0 and len(web.image_id) == 64
    assert web.create_command[1:] == ("run", "-d", "--name", "web", "-p", "8081:8080", "httpd-lite:1")
    assert web.image == "docker.io/library/httpd-lite:1" and web.host_ports == [("tcp", 8081)]
    assert (agent.state, agent.exit_code, agent.network_mode) == ("exited", 1, "host")
    assert agent.exposed == ("9090/tcp",) and agent.host_ports == [("tcp", 9090)]
    assert "bind: Address already in use" in agent.log_tail
    conmon = Listener("tcp", "0.0.0.0", 8081, (Owner(web.conmon_pid, "conmon", unit="ssh.service"),))
    state = HostState("h", listeners=(conmon,), containers=(agent, web))
    assert state.container_of(conmon) == web  # not ssh.service: the scope podman ran from
    assert HostState.from_dict(state.to_dict()) == state


def test_engine_absent_or_down_is_a_note() -> None:
    assert parse_containers("podman", {"ps": {"rc": 127, "err": "podman: not installed"}}) == (
        (), "podman: not installed")
    found, note = parse_containers("docker", {"ps": {"rc": 1, "err": "Cannot connect to the Docker daemon"}})
    assert found == () and note is not None and "Cannot connect" in note


def test_quadlet() -> None:
    q = parse_quadlet("/etc/containers/systemd/agent.container",
                      "[Unit]\nDescription=x\n[Container]\nImage=prom/node-exporter\nPublishPort=9100:9100\n"
                      "PublishPort=127.0.0.1:9101:9101\nNetwork=host\n[Install]\nWantedBy=default.target\n")
    assert q.unit == "agent.service" and q.container_name == "systemd-agent"
    assert q.publish == ("9100:9100", "127.0.0.1:9101:9101") and q.network == "host"
    assert q.exposed == ()
    # the probe's exposed ports of host-network quadlets' images (quadlet's --rm leaves no container to ask)
    q = parse_quadlet("/etc/containers/systemd/agent.container", "[Container]\nImage=prom/agent\nNetwork=host\n",
                      {"prom/agent": '{"9090/tcp":{}}', "other": '{"1/tcp":{}}'})
    assert q.exposed == ("9090/tcp",)


def test_a_podman_container_names_the_systemd_unit_it_runs_under() -> None:
    # quadlet's and `podman generate systemd`'s units set PODMAN_SYSTEMD_UNIT: rollback knows a quadlet's container
    raw = json.dumps([{"Id": "c" * 64, "Name": "systemd-web", "State": {"Status": "running"},
                       "Config": {"Image": "busybox", "Labels": {"PODMAN_SYSTEMD_UNIT": "web.service"}}},
                      {"Id": "d" * 64, "Name": "plain", "State": {"Status": "running"}, "Config": {"Labels": None}}])
    assert [(c.name, c.unit) for c in parse_inspect("podman", raw)] == [("plain", ""), ("systemd-web", "web.service")]
