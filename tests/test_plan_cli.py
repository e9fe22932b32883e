"""`safeapply plan` never silent: what it could not analyse is a warning (task, file:line, why), the verdict
counts it, and --strict-plan blocks on it; lookups never run on the controller while the plan resolves."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from safeapply.cli import main
from safeapply.probe.model import Facts, HostState

INV = "all:\n  hosts:\n    h1: {ansible_connection: local}\n"

PB = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: write a file
      ansible.builtin.copy: {dest: /etc/motd, content: "hi\\n"}
    - name: pick the install flavour
      ansible.builtin.include_tasks: "{{ flavour_not_defined }}.yml"
    - name: start the app
      ansible.builtin.service: {name: "{{ app_name_not_defined }}", state: started}
"""


def _setup(tmp_path: Path, playbook: str) -> list[str]:
    (tmp_path / "inv.yml").write_text(INV)
    (tmp_path / "pb.yml").write_text(textwrap.dedent(playbook))
    (tmp_path / "state.json").write_text(json.dumps({"h1": HostState("h1", facts=Facts(
        systemd_running=True)).to_dict()}))
    return ["plan", str(tmp_path / "pb.yml"), "-i", str(tmp_path / "inv.yml"), "--state",
            str(tmp_path / "state.json")]


def test_unanalysed_tasks_are_warnings_with_task_place_and_reason(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    args = _setup(tmp_path, PB)
    assert main([*args, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)["hosts"]["h1"]
    warn = [f for f in r["findings"] if f["code"] == "not-analysed"]
    assert {f["task"]["name"] for f in warn} == {"pick the install flavour", "start the app"}
    assert all(f["severity"] == "warning" and f["task"]["path"].startswith(str(tmp_path / "pb.yml") + ":")
               for f in warn)
    assert any("flavour_not_defined" in f["message"] for f in warn)
    assert (r["tasks"], r["not_analysed"]) == (3, 2)
    assert r["verdict"] == "no collisions among the 1 of 3 task(s) analysed; 2 not analysed"
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "no collisions among the 1 of 3 task(s) analysed; 2 not analysed" in out
    assert "pick the install flavour" in out and "pb.yml:6" in out


def test_strict_plan_blocks_on_unanalysed_port_bearing_tasks(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    args = _setup(tmp_path, PB)
    assert main([*args, "--strict-plan", "--json"]) == 17
    r = json.loads(capsys.readouterr().out)["hosts"]["h1"]
    assert {f["task"]["name"] for f in r["findings"] if f["severity"] == "blocking"} == {
        "pick the install flavour", "start the app"}
    plain = _setup(tmp_path, "- hosts: all\n  gather_facts: false\n  tasks:\n"
                   "    - ansible.builtin.copy: {dest: '{{ nowhere }}', content: x}\n")
    assert main([*plain, "--strict-plan"]) == 0  # not port-bearing: still only a warning


def test_lookups_do_not_run_while_planning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "marker"
    args = _setup(tmp_path, f"""\
        - hosts: all
          gather_facts: false
          vars:
            from_var: "{{{{ lookup('pipe', 'touch {marker}-var') }}}}"
          tasks:
            - name: exporter
              community.docker.docker_container:
                name: "{{{{ lookup('pipe', 'touch {marker}') }}}}"
                image: "{{{{ from_var }}}}"
                published_ports: ["{{{{ query('pipe', 'touch {marker}-q') | length }}}}:80"]
              when: lookup('pipe', 'touch {marker}-when') == ''
        """)
    rc = main([*args, "--json"])
    assert not list(tmp_path.glob("marker*")), "a lookup ran on the controller during plan"
    assert rc == 0
    r = json.loads(capsys.readouterr().out)["hosts"]["h1"]
    [f] = [f for f in r["findings"] if f["code"] == "not-analysed"]
    assert f["task"]["name"] == "exporter" and "lookup" in f["message"] and "pipe" in f["message"]
