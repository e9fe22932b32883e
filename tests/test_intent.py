"""Intent: real playbooks loaded by real Ansible, variables resolved per host."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from safeapply.cli import main
from safeapply.intent import Intent, playbook_intent
from safeapply.probe.model import Facts, HostState, Listener, Owner, Unit

EXAMPLES = Path(__file__).parent.parent / "playbooks" / "examples"


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))


INV = "all:\n  hosts:\n    h1: {ansible_connection: local}\n    h2: {ansible_connection: local}\n"


def one(tmp_path: Path, playbook: str, extra: dict[str, str] | None = None, ev: tuple[str, ...] = (),
        host: str = "h1") -> Intent:
    write(tmp_path, {"inv.yml": INV, "pb.yml": playbook, **(extra or {})})
    return playbook_intent(tmp_path / "pb.yml", [str(tmp_path / "inv.yml")], None, ev)[host]


def ports(i: Intent) -> set[tuple[str, str | None, int, str]]:
    return {(b.proto, b.address, b.port, b.owner) for b in i.binds}


def test_docker_and_podman_containers(tmp_path: Path) -> None:
    i = one(tmp_path, """
        - hosts: all
          vars: {web_port: 8080}
          tasks:
            - community.docker.docker_container:
                name: web
                image: nginx:1.27
                published_ports: ["{{ web_port }}:80", "127.0.0.1:8443:443", "53:53/udp", "9000"]
            - containers.podman.podman_container:
                name: cache
                image: redis:7
                ports: ["6379:6379"]
            - community.docker.docker_container: {name: gone, image: x, state: absent}
    """)
    assert ports(i) == {("tcp", None, 8080, "web"), ("tcp", "127.0.0.1", 8443, "web"),
                        ("udp", None, 53, "web"), ("tcp", None, 6379, "cache")}
    assert [(c.engine, c.name, c.state) for c in i.containers] == [
        ("docker", "web", "started"), ("podman", "cache", "started"), ("docker", "gone", "absent")]


def test_host_network_container_port_known_or_unknown(tmp_path: Path) -> None:
    i = one(tmp_path, """
        - hosts: all
          tasks:
            - community.docker.docker_container:
                name: agent
                image: prom/node-exporter
                network_mode: host
                command: ["--web.listen-address=:9100"]
            - community.docker.docker_container: {name: mystery, image: foo/bar, network_mode: host}
    """)
    assert ports(i) == {("tcp", None, 9100, "agent")}
    assert [n.kind for n in i.notes] == ["unknown-port"] and "mystery" in i.notes[0].message


def test_compose_inline_and_project_src(tmp_path: Path) -> None:
    i = one(tmp_path, """
        - hosts: all
          tasks:
            - community.docker.docker_compose_v2:
                project_name: mon
                definition:
                  services:
                    grafana: {image: grafana/grafana, ports: ["3000:3000"]}
                    prom:
                      image: prom/prometheus
                      container_name: prometheus
                      ports: [{target: 9090, published: 9091, host_ip: 127.0.0.1}]
            - ansible.builtin.copy:
                src: compose.yaml
                dest: /srv/app/compose.yaml
            - community.docker.docker_compose_v2: {project_src: /srv/app}
            - community.docker.docker_compose_v2: {project_src: /srv/elsewhere}
    """, {"files/compose.yaml": "services:\n  api: {image: my/api, ports: ['8000:8000']}\n"})
    assert ports(i) == {("tcp", None, 3000, "mon-grafana-1"), ("tcp", "127.0.0.1", 9091, "prometheus"),
                        ("tcp", None, 8000, "app-api-1")}
    assert any(n.kind == "unresolved" and "/srv/elsewhere" in n.message for n in i.notes)


def test_quadlet_and_unit_files_and_config(tmp_path: Path) -> None:
    i = one(tmp_path, """
        - hosts: all
          vars: {listen_port: 8081}
          tasks:
            - ansible.builtin.copy:
                dest: /etc/containers/systemd/agent.container
                content: |
                  [Container]
                  Image=docker.io/prom/node-exporter
                  PublishPort=9100:9100
            - ansible.builtin.template: {src: app.service.j2, dest: /etc/systemd/system/app.service}
            - ansible.builtin.copy:
                dest: /lib/systemd/system/echo.socket
                content: "[Socket]\\nListenStream=127.0.0.1:7777\\nListenDatagram=7777\\n"
            - ansible.builtin.template: {src: nginx.conf.j2, dest: /etc/nginx/nginx.conf}
              notify: restart nginx
            - ansible.builtin.service: {name: app, state: started, enabled: true}
          handlers:
            - name: restart nginx
              ansible.builtin.service: {name: nginx, state: restarted}
    """, {"templates/app.service.j2": "[Service]\nExecStart=/usr/bin/app --port {{ listen_port }}\n",
          "templates/nginx.conf.j2": "server {\n  listen 8088;\n}\n"})
    assert ports(i) == {("tcp", None, 9100, "systemd-agent"), ("tcp", None, 8081, "app.service"),
                        ("tcp", "127.0.0.1", 7777, "echo.socket"), ("udp", None, 7777, "echo.socket"),
                        ("tcp", None, 8088, "nginx.service")}
    ops = {(u.unit, u.op) for u in i.units}
    assert {("agent.service", "install"), ("app.service", "install"), ("app.service", "start"),
            ("app.service", "enable"), ("nginx.service", "restart"), ("echo.socket", "install")} <= ops
    assert "/etc/nginx/nginx.conf" in {f.path for f in i.files}
    assert i.containers[0].engine == "quadlet" and i.containers[0].unit == "agent.service"


def test_services_commands_loops_and_when(tmp_path: Path) -> None:
    i = one(tmp_path, """
        - hosts: all
          vars: {old: [a, b], skip_it: false}
          tasks:
            - ansible.builtin.service: {name: "{{ item }}", state: stopped, enabled: false}
              loop: "{{ old }}"
            - ansible.builtin.command: systemctl disable --now legacy.service
            - ansible.builtin.shell: docker run -d --name adhoc -p 8181:80 nginx
            - ansible.builtin.systemd_service: {name: never, state: started}
              when: skip_it
            - ansible.builtin.systemd_service: {name: maybe, state: started}
              when: ansible_facts.os_family == "Debian"
    """)
    ops = [(u.unit, u.op) for u in i.units]
    assert ops[:4] == [("a.service", "stop"), ("a.service", "disable"), ("b.service", "stop"),
                       ("b.service", "disable")]
    assert ("legacy.service", "stop") in ops and ("never.service", "start") not in ops
    maybe = [u for u in i.units if u.unit == "maybe.service"]
    assert maybe and maybe[0].task.conditional
    assert ports(i) == {("tcp", None, 8181, "adhoc")}


ROLE = {
    "roles/agent/defaults/main.yml": "agent_port: 9100\n",
    "roles/agent/tasks/main.yml": """
        - community.docker.docker_container:
            name: agent
            image: prom/node-exporter
            published_ports: ["{{ agent_port }}:9100"]
    """,
    "pb.yml": "- hosts: all\n  roles: [agent]\n",
}


@pytest.mark.parametrize(("extra", "ev", "expected"), [
    ({}, (), {"h1": 9100, "h2": 9100}),
    ({"group_vars/all.yml": "agent_port: 9200\n"}, (), {"h1": 9200, "h2": 9200}),
    ({"group_vars/all.yml": "agent_port: 9200\n", "host_vars/h2.yml": "agent_port: 9300\n"}, (),
     {"h1": 9200, "h2": 9300}),
    ({"host_vars/h2.yml": "agent_port: 9300\n"}, ("agent_port=9400",), {"h1": 9400, "h2": 9400}),
])
def test_variable_precedence(tmp_path: Path, extra: dict[str, str], ev: tuple[str, ...],
                             expected: dict[str, int]) -> None:
    write(tmp_path, {"inv.yml": INV, **ROLE, **extra})
    intents = playbook_intent(tmp_path / "pb.yml", [str(tmp_path / "inv.yml")], None, ev)
    assert {h: [b.port for b in i.binds] for h, i in intents.items()} == {h: [p] for h, p in expected.items()}


def test_unresolved_is_reported_not_guessed(tmp_path: Path) -> None:
    i = one(tmp_path, """
        - hosts: all
          tasks:
            - community.docker.docker_container:
                name: x
                image: y
                published_ports: ["{{ undefined_port }}:80", "8080:80"]
    """)
    assert ports(i) == {("tcp", None, 8080, "x")}
    assert [n.kind for n in i.notes] == ["unresolved"] and "undefined_port" in i.notes[0].message


def test_limit(tmp_path: Path) -> None:
    write(tmp_path, {"inv.yml": INV, **ROLE})
    assert list(playbook_intent(tmp_path / "pb.yml", [str(tmp_path / "inv.yml")], "h2")) == ["h2"]


def _state_file(tmp_path: Path) -> Path:
    unit = Unit("node_exporter.service", "loaded", "active", "running", "enabled", 412)
    lst = Listener("tcp", "0.0.0.0", 9090, (Owner(412, "node_exporter", ("/usr/bin/node_exporter",),
                                                   "node_exporter.service"),))
    states = {h: HostState(h, units=(unit,), listeners=(lst,), facts=Facts(systemd_running=True)).to_dict()
              for h in ("h1", "h2")}
    path = tmp_path / "state.json"
    path.write_text(json.dumps(states))
    return path


@pytest.mark.parametrize(("playbook", "code"), [
    ("seed-02-agent-container.yml", 17), ("clean-agent-container.yml", 0), ("clean-web.yml", 0),
    ("clean-role-vars.yml", 0),
])
def test_plan_cli_on_examples_with_saved_state(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               playbook: str, code: int) -> None:
    write(tmp_path, {"inv.yml": INV})
    rc = main(["plan", str(EXAMPLES / playbook), "-i", str(tmp_path / "inv.yml"), "--state",
               str(_state_file(tmp_path)), "--json"])
    assert rc == code
    report = json.loads(capsys.readouterr().out)["hosts"]
    blocking = [f for f in report["h1"]["findings"] if f["severity"] == "blocking"]
    if code:
        assert {(f["code"], f["unit"]) for f in blocking} >= {("port-in-use", "node_exporter.service")}
        assert next(f for f in blocking if f["code"] == "port-in-use")["pid"] == 412
    else:
        assert report["h1"]["findings"] == []


def test_plan_cli_usage_errors(tmp_path: Path) -> None:
    write(tmp_path, {"inv.yml": INV, "bad.yml": "- hosts: all\n  tasks: [ {{ \n"})
    assert main(["plan", str(tmp_path / "missing.yml"), "-i", str(tmp_path / "inv.yml")]) == 2
    assert main(["plan", str(tmp_path / "bad.yml"), "-i", str(tmp_path / "inv.yml")]) == 2


def test_the_way_in_sshd_firewall_network_and_detached_tasks(tmp_path: Path) -> None:
    i = one(tmp_path, """
        - hosts: all
          tasks:
            - name: ruleset
              ansible.builtin.copy: {dest: /etc/nftables.conf, content: "flush ruleset\\n"}
            - name: detached
              ansible.builtin.shell: sleep 1
              async: 30
              poll: 0
            - name: ssh
              ansible.builtin.service: {name: ssh, state: restarted, enabled: true}
            - name: ufw
              community.general.ufw: {state: enabled}
            - name: app config
              ansible.builtin.copy: {dest: /etc/app.conf, content: "x\\n"}
            - name: awaited
              ansible.builtin.shell: sleep 1
              async: 30
              poll: 5
    """)
    assert i.way_in == ["detached: runs on after the play (async, poll: 0)", "ufw: ufw",
                        "ruleset: writes /etc/nftables.conf", "ssh: restart ssh.service"]
    assert one(tmp_path, "- hosts: all\n  tasks:\n    - ansible.builtin.copy: {dest: /etc/a, content: x}\n"
               ).way_in == []


def test_account_tasks_are_the_way_in_only_where_they_can_touch_the_login(tmp_path: Path) -> None:
    i = one(tmp_path, """
        - hosts: all
          vars: {who: alice}
          tasks:
            - {name: app, ansible.builtin.user: {name: app, system: true}}
            - {name: app group, ansible.builtin.group: {name: app}}
            - {name: key, ansible.posix.authorized_key: {user: deploy, key: "ssh-ed25519 AAAA x"}}
            - {name: templated, ansible.builtin.user: {name: "{{ who }}"}}
            - {name: gone, ansible.builtin.user: {name: old, state: absent}}
            - {name: admin, ansible.builtin.user: {name: ops, groups: [adm, sudo], append: true}}
            - {name: wheel, ansible.builtin.group: {name: wheel}}
    """)
    assert i.way_in == ["templated: user", "gone: user", "admin: user", "wheel: group"]
    assert i.way_in_accounts == {"app: user app": "app", "app group: group app": "app",
                                 "key: authorized_key deploy": "deploy"}
