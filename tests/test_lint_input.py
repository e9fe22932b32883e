"""Broken input gives a clear finding with file:line, never a traceback; CLI exit codes; offline; cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from safeapply.cli import main
from safeapply.lint import Severity, lint_paths

DATA = Path(__file__).parent / "lint_data"
SAFEAPPLY = Path(sys.executable).parent / "safeapply"


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))


@pytest.mark.parametrize(("name", "rule", "line"), [
    ("invalid_yaml.yml", "yaml-invalid", 7),
    ("duplicate_keys.yml", "duplicate-key", 7),
    ("not_a_playbook.yml", "not-a-playbook", 1),
    ("unknown_module.yml", "unknown-module", 5),
    ("bad_option.yml", "unknown-option", 9),
    ("bad_value.yml", "invalid-choice", 7),
    ("undefined_var.yml", "undefined-variable", 6),
    ("jinja_error.yml", "jinja-syntax", 6),
])
def test_broken_input_is_a_blocking_finding(name: str, rule: str, line: int, tmp_path: Path) -> None:
    pb = tmp_path / name
    shutil.copy(DATA / name, pb)
    report = lint_paths([pb], ansible_lint=False, use_cache=False)
    hits = [f for f in report.findings if f.rule == rule]
    assert hits, report.findings
    assert hits[0].severity is Severity.BLOCKING and hits[0].line == line and hits[0].file == name


def test_cli_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "--json", str(tmp_path / "nope.yml")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"safeapply: error: playbook {tmp_path / 'nope.yml'} not found (give the path of a " \
        "playbook file)\n"  # the one error format, like every command's


def test_cli_full_pass_blocking_json_and_sarif(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("bad_value.yml", "jinja_error.yml", "clean.yml", "style_only.yml"):
        shutil.copy(DATA / name, tmp_path / name)
    sarif = tmp_path / "out.sarif"
    assert main(["lint", "--json", "--sarif", str(sarif), str(tmp_path / "bad_value.yml"),
                 str(tmp_path / "jinja_error.yml")]) == 16
    out = json.loads(capsys.readouterr().out)
    assert {"invalid-choice", "jinja-syntax"} <= {f["rule"] for f in out["findings"]}
    doc = json.loads(sarif.read_text())
    assert doc["version"] == "2.1.0" and doc["runs"][0]["results"]
    # style-only problems (ansible-lint's name/fqcn/no-changed-when...) are warnings: exit 0, 16 with --strict
    assert main(["lint", str(tmp_path / "style_only.yml")]) == 0
    human = capsys.readouterr().out
    assert "style_only.yml" in human and "warn" in human
    assert main(["lint", "--strict", str(tmp_path / "style_only.yml")]) == 16
    capsys.readouterr()
    assert main(["lint", "--format", "sarif", str(tmp_path / "clean.yml")]) == 0
    assert json.loads(capsys.readouterr().out)["runs"][0]["results"] == []


def test_uninstalled_collection_is_not_blocking(tmp_path: Path) -> None:
    shutil.copy(DATA / "community_docker.yml", tmp_path / "pb.yml")
    report = lint_paths([tmp_path / "pb.yml"], use_cache=False)
    from safeapply.lint.modules import collection_installed

    if collection_installed("community.docker"):
        assert any(f.rule == "unknown-option" and "`memory`" in f.fix for f in report.findings)
    else:
        assert not report.blocking, report.blocking
        assert any("not installed" in f.message for f in report.findings)


def test_cache_hit_and_private_dir(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    shutil.copy(DATA / "bad_value.yml", pb)
    first = lint_paths([pb])
    second = lint_paths([pb])
    assert not first.cached and second.cached
    assert [f.to_dict() for f in first.findings] == [f.to_dict() for f in second.findings]
    cache_dir = tmp_path / "state" / "cache" / "lint"
    assert cache_dir.stat().st_mode & 0o777 == 0o700
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("x: 1\n")
    assert not lint_paths([pb]).cached  # vars beside the playbook are part of the key


def test_cached_cli_does_not_import_ansible(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    shutil.copy(DATA / "clean.yml", pb)
    env = {**os.environ, "SAFEAPPLY_STATE_DIR": str(tmp_path / "state")}
    code = ("import sys; from safeapply.lint import lint_paths; r = lint_paths([sys.argv[1]]); "
            "print(r.cached, 'ansible.plugins' in sys.modules, 'ansiblelint' in sys.modules)")
    run = [sys.executable, "-c", code, str(pb)]
    assert subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout.split()[0] == "False"
    assert subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout.split() == [
        "True", "False", "False"]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root for unshare -n")
def test_offline_in_empty_network_namespace(tmp_path: Path) -> None:
    for name in ("bad_value.yml", "style_only.yml"):
        shutil.copy(DATA / name, tmp_path / name)
    files = [str(tmp_path / "bad_value.yml"), str(tmp_path / "style_only.yml")]
    online = subprocess.run([str(SAFEAPPLY), "lint", "--json", "--no-cache", *files], capture_output=True,
                            text=True, env={**os.environ, "SAFEAPPLY_STATE_DIR": str(tmp_path / "s1")})
    offline = subprocess.run(["unshare", "-n", str(SAFEAPPLY), "lint", "--json", "--no-cache", *files],
                             capture_output=True, text=True,
                             env={**os.environ, "SAFEAPPLY_STATE_DIR": str(tmp_path / "s2")})
    assert online.returncode == offline.returncode == 16, offline.stderr
    key = ["rule", "file", "line", "severity"]
    assert [[f[k] for k in key] for f in json.loads(offline.stdout)["findings"]] == \
        [[f[k] for k in key] for f in json.loads(online.stdout)["findings"]]
