"""The project config file (issue 12 item 5): where it is found, what overrides it, what it rejects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safeapply.cli import main

SYSTEM_WRITE = """- hosts: all
  gather_facts: false
  tasks:
    - name: system file
      ansible.builtin.copy: {dest: /etc/cf-open.conf, content: "x\\n", mode: "0666"}
"""


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cwd, HOME and state in tmp; no SAFEAPPLY_* setting from the caller's environment."""
    import os

    for name in list(os.environ):
        if name.startswith("SAFEAPPLY_") and name != "SAFEAPPLY_SANDBOX_PREFIX":
            monkeypatch.delenv(name)
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path / "proj")
    return tmp_path


def _settings(capsys: pytest.CaptureFixture[str]) -> dict[str, tuple[object, str]]:
    capsys.readouterr()
    assert main(["config", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["schema"] == "safeapply/config/1"
    return {k: (v["value"], v["source"]) for k, v in out["settings"].items()}


def test_precedence_env_over_cwd_file_over_home_file_over_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert _settings(capsys)["settle"] == (3.0, "default")
    home = tmp_path / "home" / ".config" / "safeapply" / "config.toml"
    home.parent.mkdir(parents=True)
    home.write_text("settle = 5\nroots = ['/etc', '/opt/app']\n")
    assert _settings(capsys)["settle"] == (5, str(home))
    here = tmp_path / "proj" / "safeapply.toml"
    here.write_text("settle = 7\n")
    got = _settings(capsys)
    assert got["settle"] == (7, str(here)) and got["roots"] == (["/etc"], "default")  # only the first file found
    explicit = tmp_path / "elsewhere.toml"
    explicit.write_text("settle = 8\n")
    monkeypatch.setenv("SAFEAPPLY_CONFIG", str(explicit))
    assert _settings(capsys)["settle"] == (8, str(explicit))
    monkeypatch.setenv("SAFEAPPLY_SETTLE", "9")
    assert _settings(capsys)["settle"] == ("9", "env SAFEAPPLY_SETTLE")


def test_the_file_presets_a_command_option_and_the_flag_overrides_it(tmp_path: Path) -> None:
    pb = tmp_path / "proj" / "pb.yml"
    pb.write_text(SYSTEM_WRITE)
    assert main(["lint", str(pb)]) == 16
    (tmp_path / "proj" / "safeapply.toml").write_text("accept = ['writable-system-path']\n")
    assert main(["lint", str(pb)]) == 0  # accepted by the file
    assert main(["lint", "--accept", "curl-pipe-sh", str(pb)]) == 16  # the flag replaces the file's list


@pytest.mark.parametrize(("text", "words"), [
    ("setle = 3\n", "unknown key 'setle'"),
    ("settle = 'soon'\n", "settle must be a number of seconds, not 'soon'"),
    ("strict_lint = 1\n", "strict_lint must be true or false"),
    ("roots = '/etc'\n", "roots must be a list of paths"),
    ("settle = \n", "not valid TOML"),
])
def test_bad_file_is_one_line_and_exit_3(tmp_path: Path, text: str, words: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "proj" / "safeapply.toml").write_text(text)
    assert main(["config"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("safeapply: error: ") and words in err and err.count("\n") == 1, err


def test_missing_explicit_file_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SAFEAPPLY_CONFIG", str(tmp_path / "nope.toml"))
    assert main(["config"]) == 3
    assert "SAFEAPPLY_CONFIG" in capsys.readouterr().err
