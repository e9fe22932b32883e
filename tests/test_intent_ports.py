"""Ports inside command lines: `docker|podman run` in a unit's ExecStart, in every publish form."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from safeapply.cli import main
from safeapply.intent import playbook_intent
from safeapply.intent.ports import PortSpec, parse_run, ports_in_unit
from safeapply.probe.model import Facts, HostState, Listener, Owner, Unit

INV = "all:\n  hosts:\n    h1: {ansible_connection: local}\n"


@pytest.mark.parametrize(("exec_start", "expected"), [
    ("/usr/bin/docker run --rm --name ne -p 9100:9100 prom/node-exporter", {("tcp", None, 9100)}),
    ("/usr/bin/podman run --publish 127.0.0.1:80:80/tcp docker.io/nginx", {("tcp", "127.0.0.1", 80)}),
    ("/usr/bin/podman run --publish=[::]:8443:443 nginx", {("tcp", "::", 8443)}),
    ("docker run -d -p 127.0.0.1::80 nginx", set()),
    ("docker run -it -p 53:53/udp -p 53:53 coredns", {("udp", None, 53), ("tcp", None, 53)}),
    ("docker run -p 8000-8002:8000-8002 app", {("tcp", None, 8000), ("tcp", None, 8001), ("tcp", None, 8002)}),
    ("/usr/bin/env docker container run -e A=1 -v /x:/y --net=host prom/node-exporter "
     "--web.listen-address=:9101", {("tcp", None, 9101)}),
    ("podman --log-level=info run --network host --name g grafana/agent -server.http.address=:12345", set()),
    ("docker run -p 9100 x", set()),
    ("-/usr/bin/docker run --name x -p 0.0.0.0:9100:9100 x --port 1", {("tcp", "0.0.0.0", 9100)}),
])
def test_publish_forms_in_exec_start(exec_start: str, expected: set[tuple[str, str | None, int]]) -> None:
    found = ports_in_unit(f"[Service]\nExecStart={exec_start}\n")
    assert {(s.proto, s.address, s.port) for s in found} == expected


def test_parse_run_reads_name_image_network_and_command() -> None:
    run = parse_run(["podman", "run", "-dit", "--name=web", "--network", "host", "nginx", "-g", "x"])
    assert run is not None and (run.engine, run.name, run.image, run.host_network, run.command) == (
        "podman", "web", "nginx", True, ("-g", "x"))
    assert parse_run(["docker", "ps"]) is None and parse_run(["python3", "-m", "http.server"]) is None


def test_a_host_port_pair_is_not_an_address() -> None:
    assert ports_in_unit("[Service]\nExecStart=/usr/bin/app --listen 9100:9100\n") == []
    assert ports_in_unit("[Service]\nExecStart=/usr/bin/app --listen 10.0.0.1:9100\n") == [
        PortSpec("tcp", "10.0.0.1", 9100)]


PB = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: exporter unit
      ansible.builtin.copy:
        dest: /etc/systemd/system/ne.service
        content: |
          [Service]
          ExecStartPre=-/usr/bin/docker rm -f ne
          ExecStart=/usr/bin/docker run --name ne -p 9100:9100 prom/node-exporter
    - name: start exporter
      ansible.builtin.systemd: {name: ne, state: started, daemon_reload: true}
"""


@pytest.mark.parametrize(("exec_start", "port", "address"), [
    ("/usr/bin/docker run --name ne -p 9100:9100 prom/node-exporter", 9100, "0.0.0.0"),
    ("/usr/bin/podman run --rm --publish 127.0.0.1:80:80/tcp docker.io/nginx", 80, "127.0.0.1"),
    ("/usr/bin/podman run --publish=[::]:8443:443 docker.io/nginx", 8443, "::"),
    ("/usr/bin/docker run -d -p 9000-9002:9000-9002 app", 9001, "0.0.0.0"),
    ("/usr/bin/docker run --net=host prom/node-exporter --web.listen-address=:9100", 9100, "0.0.0.0"),
])
def test_container_in_exec_start_blocks_on_a_held_port_and_passes_without(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], exec_start: str, port: int, address: str) -> None:
    (tmp_path / "inv.yml").write_text(INV)
    (tmp_path / "pb.yml").write_text(PB.replace(
        "ExecStart=/usr/bin/docker run --name ne -p 9100:9100 prom/node-exporter", f"ExecStart={exec_start}"))
    i = playbook_intent(tmp_path / "pb.yml", [str(tmp_path / "inv.yml")])["h1"]
    assert port in [b.port for b in i.binds] and {b.owner for b in i.binds} == {"ne.service"}
    unit = Unit("squat.service", "loaded", "active", "running", "enabled", 412)
    lst = Listener("tcp", address, port, (Owner(412, "squat", (), "squat.service"),))
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"h1": HostState("h1", units=(unit,), listeners=(lst,),
                                                 facts=Facts(systemd_running=True)).to_dict()}))
    rc = main(["plan", str(tmp_path / "pb.yml"), "-i", str(tmp_path / "inv.yml"), "--state", str(state), "--json"])
    assert rc == 17
    [f] = [f for f in json.loads(capsys.readouterr().out)["hosts"]["h1"]["findings"] if f["severity"] == "blocking"]
    assert (f["unit"], f["port"], f["task"]["name"]) == ("squat.service", port, "start exporter")
    state.write_text(json.dumps({"h1": HostState("h1", facts=Facts(systemd_running=True)).to_dict()}))
    assert main(["plan", str(tmp_path / "pb.yml"), "-i", str(tmp_path / "inv.yml"), "--state", str(state)]) == 0


def test_odd_inputs_never_make_plan_exit_5(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text(INV)
    (tmp_path / "pb.yml").write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          tasks:
            - ansible.builtin.copy:
                dest: /etc/systemd/system/odd.service
                content: "[Service]\\nExecStart=/usr/bin/app --listen host.example:99999 -p x:y --bind 300.1.1.1:80\\n"
            - ansible.builtin.service: {name: odd, state: started}
            - community.docker.docker_container: {name: c, image: i, published_ports: ["a:b", "[zz]:1:2", 7]}
            - ansible.builtin.shell: "docker run -p"
            - ansible.builtin.copy: {dest: /srv/app/compose.yaml, content: "services: [1, 2\\n"}
            - community.docker.docker_compose_v2: {project_src: /srv/app}
        """))
    state = tmp_path / "state.json"
    lst = Listener("tcp", "0.0.0.0", 80, (Owner(7, "x", (), "x.service"),))
    state.write_text(json.dumps({"h1": HostState("h1", listeners=(lst,)).to_dict()}))
    assert main(["plan", str(tmp_path / "pb.yml"), "-i", str(tmp_path / "inv.yml"), "--state", str(state)]) in (0, 17)


def test_conflicts_is_read_from_the_unit_file(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text(INV)
    (tmp_path / "pb.yml").write_text(PB.replace("[Service]\n", "[Unit]\n          Conflicts=node_exporter\n"
                                                "          [Service]\n", 1))
    i = playbook_intent(tmp_path / "pb.yml", [str(tmp_path / "inv.yml")])["h1"]
    assert i.conflicts == {"ne.service": ["node_exporter.service"]}


@pytest.mark.parametrize("argv", [
    ["podman", "--remote", "run", "-p", "9090:9090", "--name", "agent", "prom"],
    ["podman", "--log-level", "debug", "run", "-p", "9090:9090", "--name", "agent", "prom"],
    ["docker", "--context", "home", "container", "run", "-p", "9090:9090", "--name", "agent", "prom"],
    ["sudo", "docker", "-D", "run", "--publish=9090:9090", "--name=agent", "prom"],
])
def test_parse_run_skips_the_engines_global_options(argv: list[str]) -> None:
    """A flag such as `--remote` before the verb was read as taking a value, so the run was not seen at all."""
    run = parse_run(argv)
    assert run is not None and (run.name, run.image, run.publish) == ("agent", "prom", ("9090:9090",))
