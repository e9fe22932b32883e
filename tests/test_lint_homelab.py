"""A homelab project written the way people write them (roles, group_vars, handlers, templates, free-form args,
`latest`, `ignore_errors`, `shell`): plenty of warnings, nothing blocking — style alone never blocks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safeapply.cli import main

SITE = Path(__file__).parent / "lint_data" / "homelab" / "site.yml"


def test_messy_but_working_project_is_not_blocked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))
    assert main(["lint", "--no-cache", "--json", str(SITE)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert not [f for f in report["findings"] if f["severity"] == "blocking"]
    rules = {f["rule"].split("[")[0] for f in report["findings"]}
    assert {"ignore-errors-on-change", "shell-instead-of-module", "fqcn", "package-latest"} <= rules
    # the human output keeps brackets in messages (they are not markup)
    assert main(["lint", str(SITE)]) == 0
    assert "Truthy value should be one of [" in capsys.readouterr().out
    assert main(["lint", "--strict", str(SITE)]) == 16
