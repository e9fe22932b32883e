"""Regression: a playbook named by a relative path (as users type it) lints like the absolute one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safeapply.cli import main

EXAMPLES = Path(__file__).parents[1] / "playbooks"


def test_relative_path_from_another_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(EXAMPLES.parent)
    assert main(["lint", "--no-cache", "--json", "playbooks/examples/clean-web.yml"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert not [f for f in report["findings"] if f["severity"] == "blocking"], report
