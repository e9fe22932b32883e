"""`plan --check` without a host: how the check record (the lines `safeapply_check` writes) and the static plan are
combined per task — what check mode ran comes from it, what it did not run stays as the static plan saw it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safeapply.intent.check import Merged, check_intents, read_record, static_tasks
from safeapply.intent.select import Selection
from safeapply.probe.model import Facts

PLAYBOOK = """- hosts: all
  gather_facts: false
  tasks:
    - name: start old
      ansible.builtin.command: systemctl start old.service
    - name: unit
      ansible.builtin.template: {src: u.j2, dest: /etc/systemd/system/new.service}
    - name: start new
      ansible.builtin.systemd: {name: new.service, state: started}
    - name: later container
      community.docker.docker_container: {name: web, image: nginx, published_ports: ["8081:80"]}
"""
SKIPPED = "Command would have run if not in check mode"


def _line(pb: Path, lineno: int, name: str, action: str, status: str, **more: Any) -> dict[str, Any]:
    return {"event": "result", "host": "h1", "name": name, "raw_name": name, "action": action,
            "path": f"{pb}:{lineno}", "play": "all", "handler": False, "notify": [], "listen": [], "role_path": "",
            "async": 0, "poll": 10, "status": status, "item": False, "loop": False, "args": {}, "content": None,
            "why": "", "ignore_errors": False, **more}


def _merged(tmp_path: Path, lines: list[dict[str, Any]], cut_short: bool = False) -> Merged:
    (tmp_path / "inv.yml").write_text("all:\n  hosts:\n    h1: {ansible_connection: local}\n")
    (tmp_path / "u.j2").write_text("[Service]\nExecStart=/usr/bin/python3 -m http.server {{ port_from_run }}\n")
    (tmp_path / "record.jsonl").write_text("".join(json.dumps(ln) + "\n" for ln in lines))
    record = read_record(tmp_path / "record.jsonl")
    static = static_tasks(tmp_path / "pb.yml", [str(tmp_path / "inv.yml")], None, (), {"h1": Facts(os_id="debian")},
                          Selection())
    return check_intents(static, record, lambda _h: cut_short)["h1"]


def test_check_mode_values_where_it_ran_the_static_plan_where_it_did_not(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text(PLAYBOOK)
    m = _merged(tmp_path, [
        _line(pb, 4, "start old", "ansible.builtin.command", "skipped", why=SKIPPED),
        _line(pb, 6, "unit", "ansible.builtin.template", "changed",
              args={"src": "u.j2", "dest": "/etc/systemd/system/new.service"},
              content="[Service]\nExecStart=/usr/bin/python3 -m http.server 8080\n"),
        _line(pb, 8, "start new", "ansible.builtin.systemd", "failed", why="Could not find the requested service",
              args={"name": "new.service", "state": "started"}),
    ])
    i = m.intent
    assert [(u.unit, u.op, u.task.order) for u in i.units] == \
        [("old.service", "start", 0), ("new.service", "install", 1), ("new.service", "start", 2)]
    assert [(b.port, b.owner, b.task.order) for b in i.binds] == [(8080, "new.service", 1), (8081, "web", 3)]
    assert (m.from_check, m.from_plan, m.appended) == ({1, 2}, {0, 3}, 1)
    assert m.stopped is not None and m.stopped.name == "start new"
    assert i.not_analysed == 0  # the template's content came from check mode: no "cannot render" note


def test_a_skipped_task_the_static_plan_did_not_see_is_not_analysed(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text(PLAYBOOK)
    hidden = tmp_path / "hidden.yml"
    m = _merged(tmp_path, [
        _line(hidden, 1, "run a container", "ansible.builtin.shell", "skipped", why=SKIPPED),
        _line(hidden, 3, "only on Fridays", "ansible.builtin.systemd", "skipped", why="Conditional result was False"),
    ])
    assert [(n.kind, n.task.name, n.port_bearing) for n in m.intent.notes] == [("not-analysed", "run a container",
                                                                                False)]
    assert m.intent.binds == [] and m.stopped is None  # the run ended normally: no static task added


def test_a_check_run_cut_short_keeps_the_static_plan_for_the_rest(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text(PLAYBOOK)
    m = _merged(tmp_path, [], cut_short=True)
    assert m.from_check == set() and m.from_plan == {0, 1, 2, 3}
    assert [b.port for b in m.intent.binds] == [8081]  # the unit's port needs a value only the run knows
    assert m.intent.not_analysed == 1


def test_tasks_that_would_run_for_real_in_check_mode_are_found_before_the_run(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text("all:\n  hosts:\n    h1: {ansible_connection: local}\n")
    (tmp_path / "pb.yml").write_text("""- hosts: all
  tasks:
    - name: plain
      ansible.builtin.command: "true"
    - name: explicit
      ansible.builtin.command: "true"
      check_mode: false
    - block:
        - name: inherited
          ansible.builtin.command: "true"
      check_mode: false
    - name: templated
      ansible.builtin.command: "true"
      check_mode: "{{ false }}"
    - name: in check mode anyway
      ansible.builtin.command: "true"
      check_mode: true
""")
    static = static_tasks(tmp_path / "pb.yml", [str(tmp_path / "inv.yml")], None, (), {"h1": Facts()}, Selection())
    assert [(t["name"], t["check_mode"]) for t in static.runs_for_real()] == \
        [("explicit", "False"), ("inherited", "False"), ("templated", "{{ false }}")]


def test_a_failure_followed_by_more_tasks_did_not_stop_the_host(tmp_path: Path) -> None:
    """A block's `rescue:` runs after a failure: the host goes on, and so does check mode's record."""
    pb = tmp_path / "pb.yml"
    pb.write_text(PLAYBOOK)
    m = _merged(tmp_path, [
        _line(pb, 8, "start new", "ansible.builtin.systemd", "failed",
              args={"name": "new.service", "state": "started"}),
        _line(pb, 10, "later container", "community.docker.docker_container", "changed",
              args={"name": "web", "image": "nginx", "published_ports": ["8082:80"]}),
    ])
    assert m.stopped is None and m.appended == 0
    assert [(b.port, b.owner) for b in m.intent.binds] == [(8082, "web")]
