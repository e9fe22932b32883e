"""The plan's timeline on a real host: a port is taken when its new owner starts and freed by the play's own
stop/disable/removal, in task order. A correct handover passes (and applies); the same play without the
stop blocks, naming the holder and the task that starts the new listener."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Sandbox

from safeapply.cli import main

pytestmark = pytest.mark.sandbox

PORT = 18080
OLD = "pl-old.service"


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(scope="module")
def host(sandbox_factory: Callable[[str], Sandbox]) -> Sandbox:
    return sandbox_factory("plan1")


@pytest.fixture
def old_unit(host: Sandbox) -> Iterator[None]:
    """pl-old.service holds tcp/18080 (a real listener), as the host had it before the play."""
    host.sh(f"printf '[Service]\\nExecStart=/usr/bin/python3 -m http.server {PORT}\\n[Install]\\n"
            f"WantedBy=multi-user.target\\n' > /etc/systemd/system/{OLD} && systemctl daemon-reload && "
            f"systemctl enable --now {OLD} && for i in $(seq 50); do ss -ltn | grep -q :{PORT} && break; "
            "sleep 0.1; done")
    yield
    host.sh(f"systemctl disable --now {OLD} pl-new.service 2>/dev/null; rm -f /etc/systemd/system/{OLD} "
            "/etc/systemd/system/pl-new.service; systemctl daemon-reload; true")


def _pb(tmp_path: Path, tasks: str) -> Path:
    p = tmp_path / "pb.yml"
    p.write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n{tasks}")
    return p


STOP_OLD = f"""    - name: stop the old listener
      ansible.builtin.systemd: {{name: {OLD}, state: stopped, enabled: false}}
"""
NEW_UNIT = f"""    - name: write the new unit
      ansible.builtin.copy:
        dest: /etc/systemd/system/pl-new.service
        content: "[Service]\\nExecStart=/usr/bin/python3 -m http.server {PORT}\\n"
"""
START_NEW = """    - name: start the new unit
      ansible.builtin.systemd: {name: pl-new.service, state: started, daemon_reload: true}
"""
CONTAINER = f"""    - name: run the new container
      community.docker.docker_container:
        name: web
        image: nginx:1.27
        published_ports: ["{PORT}:80"]
"""


def _plan(pb: Path, host: Sandbox, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, list[dict]]:
    capsys.readouterr()
    rc = main(["plan", str(pb), "-i", str(host.inventory), "--json", *extra])
    report = json.loads(capsys.readouterr().out)["hosts"][host.name]
    return rc, [f for f in report["findings"] if f["severity"] == "blocking"]


def test_unit_to_unit_handover_passes_and_applies(host: Sandbox, old_unit: None, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    pb = _pb(tmp_path, NEW_UNIT + STOP_OLD + START_NEW)
    assert _plan(pb, host, capsys) == (0, [])
    assert main(["run", str(pb), "-i", str(host.inventory), "--yes", "--settle", "1"]) == 0
    assert host.sh("systemctl is-active pl-new.service").strip() == "active"
    assert host.sh_rc(f"systemctl is-active {OLD}")[1].strip() == "inactive"


def test_unit_to_unit_without_the_stop_blocks_naming_holder_and_start(
        host: Sandbox, old_unit: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, [f] = _plan(_pb(tmp_path, NEW_UNIT + START_NEW), host, capsys)
    assert rc == 17
    assert (f["code"], f["unit"], f["port"], f["task"]["name"]) == ("port-in-use", OLD, PORT, "start the new unit")
    assert "python3" in f["message"]


def test_unit_to_container_with_the_unit_stopped_first(host: Sandbox, old_unit: None, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert _plan(_pb(tmp_path, STOP_OLD + CONTAINER), host, capsys) == (0, [])
    rc, [f] = _plan(_pb(tmp_path, CONTAINER), host, capsys)
    assert rc == 17 and (f["unit"], f["task"]["name"]) == (OLD, "run the new container")


def _scan_with_container(host: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A real scan of the host, plus container `web` publishing the port (no docker engine on this machine)."""
    capsys.readouterr()
    assert main(["scan", host.name, "-i", str(host.inventory), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    data["hosts"][host.name]["containers"].append({"engine": "docker", "id": "0123456789abcdef", "name": "web",
                                          "image": "nginx:1.26", "state": "running",
                                          "ports": [{"proto": "tcp", "host_ip": "", "host_port": PORT + 1,
                                                     "container_port": 80}]})
    path = tmp_path / "scan.json"
    path.write_text(json.dumps(data))
    return path


def test_container_to_container_recreate_of_the_same_name(host: Sandbox, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    state = _scan_with_container(host, tmp_path, capsys)
    same = CONTAINER.replace(f'"{PORT}:80"', f'"{PORT + 1}:80"')
    assert _plan(_pb(tmp_path, same), host, capsys, "--state", str(state)) == (0, [])
    other = same.replace("name: web", "name: web2").replace("run the new", "run another")
    rc, [f] = _plan(_pb(tmp_path, other), host, capsys, "--state", str(state))
    assert rc == 17 and (f["container"], f["task"]["name"]) == ("web", "run another container")
    removed = "    - name: remove web\n      community.docker.docker_container: {name: web, state: absent}\n"
    assert _plan(_pb(tmp_path, removed + other), host, capsys, "--state", str(state)) == (0, [])


DATA = Path(__file__).parent / "plan_data"


@pytest.fixture
def squatter(host: Sandbox) -> Iterator[None]:
    """pl-squat.service holds tcp/18090, the port the test role's unit will bind."""
    host.sh("printf '[Service]\\nExecStart=/usr/bin/python3 -m http.server 18090\\n' > "
            "/etc/systemd/system/pl-squat.service && systemctl daemon-reload && systemctl start pl-squat && "
            "for i in $(seq 50); do ss -ltn | grep -q :18090 && break; sleep 0.1; done")
    yield
    host.sh("systemctl stop pl-squat; rm -f /etc/systemd/system/pl-squat.service; systemctl daemon-reload")


@pytest.mark.parametrize(("playbook", "starter"), [
    ("role.yml", "pl_exporter : Start pl-exporter"),
    ("collection.yml", "safeapply_test.roles.exporter : Start pl-exporter"),
])
def test_role_behind_an_os_family_include_blocks_on_a_squatted_port(
        host: Sandbox, squatter: None, capsys: pytest.CaptureFixture[str], playbook: str, starter: str) -> None:
    rc, [f] = _plan(DATA / playbook, host, capsys)
    assert rc == 17
    assert (f["unit"], f["port"], f["task"]["name"]) == ("pl-squat.service", 18090, starter)


def test_role_behind_an_os_family_include_passes_and_applies_with_nothing_listening(
        host: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        for playbook in ("role.yml", "collection.yml"):
            assert _plan(DATA / playbook, host, capsys) == (0, [])
        assert main(["run", str(DATA / "role.yml"), "-i", str(host.inventory), "--yes", "--settle", "1"]) == 0
        assert host.sh("systemctl is-active pl-exporter.service").strip() == "active"
        assert "Ansible managed" in host.sh("head -1 /etc/systemd/system/pl-exporter.service")
    finally:
        host.sh("systemctl stop pl-exporter.service; rm -f /etc/systemd/system/pl-exporter.service; "
                "systemctl daemon-reload; true")


def test_run_strict_plan_stops_before_any_change_on_an_unanalysed_start(host: Sandbox, tmp_path: Path) -> None:
    pb = _pb(tmp_path, """    - name: a file
      ansible.builtin.copy: {dest: /etc/pl-strict, content: "x\\n"}
    - name: which unit
      ansible.builtin.command: echo pl-none.service
      register: which
      changed_when: false
    - name: start the unit named at run time
      ansible.builtin.systemd: {name: "{{ which.stdout }}", state: started}
""")
    assert main(["run", str(pb), "-i", str(host.inventory), "--yes", "--settle", "1", "--strict-plan"]) == 17
    assert host.sh_rc("test -e /etc/pl-strict")[0] != 0
