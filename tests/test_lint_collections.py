"""With the Ansible community collections installed (a dev dependency, `safeapply[collections]` for users),
lint checks their modules' options against the real argument specs: the classic AI mistake is reported once,
with the fix, and ansible-lint's own `args` finding for the same task is folded into ours."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safeapply.cli import main

PLAYBOOK = """- name: AI wrote this
  hosts: all
  tasks:
    - name: Run the agent container
      community.docker.docker_container:
        name: agent
        image: prom/node-exporter:v1.8.2
        memory_limit: 512m
        published_ports: ["9100:9100"]
"""


def test_memory_limit_suggests_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))
    pb = tmp_path / "pb.yml"
    pb.write_text(PLAYBOOK)
    assert main(["lint", "--no-cache", "--json", str(pb)]) == 16
    findings = json.loads(capsys.readouterr().out)["findings"]
    blocking = [f for f in findings if f["severity"] == "blocking"]
    assert [(f["rule"], f["line"]) for f in blocking] == [("unknown-option", 8)], blocking
    assert "`memory`" in blocking[0]["fix"]
