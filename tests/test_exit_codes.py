"""Exit codes are a public API: the table in the README, `safeapply exit-codes` and the error classes agree."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeapply import errors
from safeapply.cli import main
from safeapply.errors import ExitCode
from safeapply.exitcodes import TABLE

PINNED = {
    "OK": 0, "ERROR": 1, "USAGE": 2, "CONFIG": 3, "LOCKED": 4, "INTERNAL": 5, "NOTHING_TO_CHANGE": 6,
    "UNREACHABLE": 10, "AUTH": 11, "HOST_KEY": 12, "SUDO": 13, "NO_PYTHON": 14, "SNAPSHOT": 15, "LINT": 16,
    "PREFLIGHT": 17, "NO_HOSTS": 18, "VAULT": 19, "ROLLED_BACK": 20, "ROLLBACK_FAILED": 21, "SWITCH_ARMED": 22,
    "INTERRUPTED": 130, "TERMINATED": 143,
}


def test_codes_are_pinned() -> None:
    assert {c.name: int(c) for c in ExitCode} == PINNED


def test_readme_table_matches() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("<!-- exit-codes:start -->")[1].split("<!-- exit-codes:end -->")[0]
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", block, re.M)
    assert [(int(c), m) for c, m in rows] == [(int(c), m) for c, m in TABLE]


def test_every_error_class_owns_a_documented_code() -> None:
    documented = {int(c) for c, _ in TABLE}
    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, errors.SafeapplyError)]
    assert len(classes) > 10
    for cls in classes:
        assert int(cls.exit_code) in documented, cls


@pytest.fixture
def buggy_command() -> Iterator[str]:
    """A hidden command that fails with a bug, on the real app for one test only: removed afterwards."""
    from safeapply.cli.app import app

    before = list(app.registered_commands)

    @app.command("boom-for-test", hidden=True)
    def boom() -> None:
        raise RuntimeError("kaboom")

    try:
        yield "boom-for-test"
    finally:
        app.registered_commands[:] = before
    assert "boom-for-test" not in {c.name for c in app.registered_commands}


def test_funnel_maps_errors_and_bugs(capsys, tmp_path, monkeypatch, buggy_command: str) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path))
    assert main(["no-such-command"]) == ExitCode.USAGE
    assert main(["ping", "-i", str(tmp_path / "missing.ini")]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "missing.ini does not exist" in err and "Traceback" not in err
    # an unexpected exception: exit 5, one line, traceback only in the log file
    assert main([buggy_command]) == ExitCode.INTERNAL
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: kaboom" in err and "Traceback" not in err
    logs = list((tmp_path / "logs").glob("crash-*.log"))
    assert logs and "Traceback" in logs[0].read_text()
    assert oct(logs[0].stat().st_mode & 0o777) == "0o600"


def test_exit_codes_command(capsys) -> None:
    assert main(["exit-codes", "--json"]) == 0
    assert '"code": 21' in capsys.readouterr().out
