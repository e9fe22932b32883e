"""The plan follows what real roles do: includes named by variables and by the host's facts (from the scan),
include_role, collection roles, include_vars, set_fact, and templates using `ansible_managed`."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from safeapply.cli import main
from safeapply.intent import playbook_intent
from safeapply.intent.facts import ansible_facts
from safeapply.probe.model import Facts, HostState, Listener, Owner, Unit

DATA = Path(__file__).parent / "plan_data"
INV = "all:\n  hosts:\n    h1: {ansible_connection: local}\n"
DEBIAN = Facts(os_id="debian", os_version="12", init="systemd", systemd_running=True)


def _state(tmp_path: Path, port: int | None, facts: Facts = DEBIAN) -> Path:
    listeners = () if port is None else (Listener("tcp", "0.0.0.0", port, (
        Owner(77, "python3", ("/usr/bin/python3", "-m", "http.server"), "pl-squat.service"),)),)
    units = (Unit("pl-squat.service", "loaded", "active", "running", "enabled", 77),) if port else ()
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"h1": HostState("h1", units=units, listeners=listeners, facts=facts).to_dict()}))
    return path


def _plan(tmp_path: Path, playbook: Path, state: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    (tmp_path / "inv.yml").write_text(INV)
    capsys.readouterr()
    rc = main(["plan", str(playbook), "-i", str(tmp_path / "inv.yml"), "--state", str(state), "--json"])
    return rc, json.loads(capsys.readouterr().out)["hosts"]["h1"]


@pytest.mark.parametrize(("playbook", "port", "starter"), [
    ("role.yml", 18090, "pl_exporter : Start pl-exporter"),
    ("collection.yml", 18090, "safeapply_test.roles.exporter : Start pl-exporter"),
    ("compose.yml", 18091, "Start the project"),
])
def test_role_shapes_block_on_a_squatted_port_and_pass_without(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], playbook: str, port: int, starter: str) -> None:
    rc, r = _plan(tmp_path, DATA / playbook, _state(tmp_path, port), capsys)
    assert rc == 17, r["findings"]
    [f] = [f for f in r["findings"] if f["severity"] == "blocking"]
    assert (f["code"], f["unit"], f["port"], f["task"]["name"]) == ("port-in-use", "pl-squat.service", port,
                                                                       starter)
    rc, r = _plan(tmp_path, DATA / playbook, _state(tmp_path, None), capsys)
    assert (rc, r["findings"], r["not_analysed"]) == (0, [], 0)


def test_ansible_managed_and_template_vars_render(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text(INV)
    i = playbook_intent(DATA / "role.yml", [str(tmp_path / "inv.yml")], facts={"h1": DEBIAN})["h1"]
    assert [(b.port, b.owner) for b in i.binds] == [(18090, "pl-exporter.service")]
    assert not i.notes


def test_an_os_family_the_role_does_not_support_is_reported(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    rc, r = _plan(tmp_path, DATA / "role.yml", _state(tmp_path, 18090, Facts(os_id="alpine")), capsys)
    assert rc == 0
    names = {f["task"]["name"] for f in r["findings"] if f["code"] == "not-analysed"}
    assert names == {"pl_exporter : OS-specific variables", "pl_exporter : Install for this OS family"}
    assert r["verdict"].endswith("2 not analysed")


def test_include_role_and_looped_include_tasks_named_by_variables(tmp_path: Path) -> None:
    shutil.copytree(DATA / "roles", tmp_path / "roles", symlinks=True)
    files = {
        "inv.yml": INV,
        "pb.yml": """\
            - hosts: all
              gather_facts: false
              vars: {which: pl_exporter, parts: [a, b]}
              tasks:
                - ansible.builtin.set_fact: {family: Debian}
                - ansible.builtin.include_role: {name: "{{ which }}"}
                  vars: {ansible_os_family: "{{ family }}", pl_exporter_port: 18095}
                - ansible.builtin.include_tasks: "part-{{ item }}.yml"
                  loop: "{{ parts }}"
            """,
        "part-a.yml": "- community.docker.docker_container: {name: a, image: x, published_ports: ['18096:80']}\n",
        "part-b.yml": "- community.docker.docker_container: {name: b, image: x, published_ports: ['{{ item }}']}\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).write_text(textwrap.dedent(text))
    i = playbook_intent(tmp_path / "pb.yml", [str(tmp_path / "inv.yml")])["h1"]
    assert [(b.port, b.owner) for b in i.binds] == [(18095, "pl-exporter.service"), (18096, "a")]
    assert [u.task.name for u in i.units if u.op == "start"] == ["pl_exporter : Start pl-exporter"]
    assert not [n for n in i.notes if n.unanalysed]


def test_facts_follow_ansibles_names() -> None:
    f = ansible_facts(Facts(os_id="rhel", os_version="9.4", init="systemd"))
    assert (f["distribution"], f["os_family"], f["distribution_major_version"], f["service_mgr"],
            f["pkg_mgr"]) == ("RedHat", "RedHat", "9", "systemd", "dnf")
    assert ansible_facts(Facts(os_id="ubuntu"))["os_family"] == "Debian"
    assert "architecture" not in ansible_facts(DEBIAN)  # the scan does not tell: never guessed


HANDLERS = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: write the new unit
      ansible.builtin.copy:
        dest: /etc/systemd/system/new.service
        content: "[Service]\\nExecStart=/usr/bin/python3 -m http.server 18090\\n"
      notify: restart new
    - FLUSH
    - name: stop the squatter
      ansible.builtin.systemd: {name: pl-squat.service, state: stopped, enabled: false}
  handlers:
    - name: restart new
      ansible.builtin.systemd: {name: new.service, state: restarted, daemon_reload: true}
    - name: never notified
      ansible.builtin.systemd: {name: other.service, state: restarted}
"""


@pytest.mark.parametrize(("flush", "code"), [("", 0), ("ansible.builtin.meta: flush_handlers", 17)])
def test_a_handler_starts_at_its_flush_point(tmp_path: Path, capsys: pytest.CaptureFixture[str], flush: str,
                                             code: int) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text(HANDLERS.replace("- FLUSH", f"- {flush}" if flush else "- ansible.builtin.debug: {msg: x}"))
    rc, r = _plan(tmp_path, pb, _state(tmp_path, 18090), capsys)
    assert rc == code
    assert "other.service" not in {u["unit"] for u in r["intent"]["units"]}  # a handler nobody notifies
    if code:
        [f] = [f for f in r["findings"] if f["severity"] == "blocking"]
        assert (f["unit"], f["task"]["name"], f["task"]["handler"]) == ("pl-squat.service", "restart new", True)


def test_broken_includes_are_warnings_never_a_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = {
        "pb.yml": """\
            - hosts: all
              gather_facts: false
              tasks:
                - ansible.builtin.include_tasks: mapping.yml
                - ansible.builtin.include_tasks: broken.yml
                - ansible.builtin.include_tasks: missing.yml
                - ansible.builtin.include_tasks: self.yml
                - ansible.builtin.include_role: {name: no_such_role}
                - ansible.builtin.include_tasks: "{{ item }}.yml"
                  loop: "{{ 'not a list' }}"
                - ansible.builtin.include_vars: {file: broken.yml}
            """,
        "mapping.yml": "a: 1\n",
        "broken.yml": "- name: x\n  debug: {msg: [1, 2\n",
        "self.yml": "- ansible.builtin.include_tasks: self.yml\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).write_text(textwrap.dedent(text))
    rc, r = _plan(tmp_path, tmp_path / "pb.yml", _state(tmp_path, None), capsys)
    assert rc == 0
    assert r["not_analysed"] >= 6 and all(f["severity"] == "warning" for f in r["findings"])
