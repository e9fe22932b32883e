"""The on-host package holds to its minimum Python (3.8, Ansible 2.19's own target floor): vermin says so,
its tests pass under a real 3.8, and preflight refuses an older python3 on a host in one line (exit 14)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from safeapply import remote
from safeapply.cli import main
from safeapply.errors import ExitCode, NoPythonError
from safeapply.preflight import check
from safeapply.target.bootstrap import MIN_PYTHON
from safeapply.transport.local import LocalTransport

REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / "safeapply" / "target"
PYENV = Path("/root/.pyenv/versions")
PY38 = PYENV / "3.8.18" / "bin" / "python3"
OLD = [PYENV / v / "bin" / "python3" for v in ("3.7.16", "3.6.15")]


def test_min_python_is_ansible_target_floor() -> None:
    assert MIN_PYTHON == (3, 8)


def test_vermin_finds_nothing_newer_than_3_8() -> None:
    # --eval-annotations: annotations are checked as if evaluated, so a runtime `dict[str, Any]` alias (3.9)
    # is caught too; target code uses typing.Dict/Optional (see safeapply/target/ruff.toml).
    vermin = Path(sys.executable).parent / "vermin"
    proc = subprocess.run([str(vermin), "--no-tips", "--eval-annotations", "--violations", "-t=3.8-",
                           str(TARGET)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = re.search(r"Minimum required versions: (?:~2, )?(?:!2, )?(3\.\d+)", proc.stdout)
    assert found and tuple(map(int, found.group(1).split("."))) <= MIN_PYTHON, proc.stdout


@pytest.mark.skipif(not PY38.exists(), reason=f"{PY38} is not installed")
def test_target_tests_pass_under_python_3_8() -> None:
    proc = subprocess.run([str(PY38), "-m", "unittest", "discover", "-s", "tests/target", "-t", "tests/target"],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert re.search(r"Ran (\d+) tests", proc.stderr) and "OK" in proc.stderr.splitlines()[-1], proc.stderr


@pytest.mark.skipif(not PY38.exists(), reason=f"{PY38} is not installed")
def test_installed_package_runs_under_python_3_8(tmp_path: Path) -> None:
    pyz = tmp_path / "target.pyz"
    pyz.write_bytes(remote.bundle().data)
    proc = subprocess.run([str(PY38), str(pyz), "probe.collect"], capture_output=True, text=True, timeout=120,
                          check=False, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert '"python": "3.8.18"' in proc.stdout


def _old_python_first_on_path(python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if not python.exists():
        pytest.skip(f"{python} is not installed")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(python)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return subprocess.run([str(python), "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("python", OLD, ids=lambda p: p.parent.parent.name)
def test_preflight_refuses_an_old_python_in_one_line(python: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    version = _old_python_first_on_path(python, tmp_path, monkeypatch)
    with pytest.raises(NoPythonError) as e:
        check(LocalTransport("old"))
    assert e.value.exit_code == ExitCode.NO_PYTHON == 14
    assert str(e.value) == (f"old: python3 on the target is {version}; safeapply needs 3.8 or newer "
                            "(install python3 3.8 or newer there (Ansible 2.19 needs it too))")
    with pytest.raises(NoPythonError, match=f"is {version}; safeapply needs 3.8"):  # a call says the same
        remote.call(LocalTransport("old"), "probe.collect")


def test_ping_refuses_an_old_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    version = _old_python_first_on_path(OLD[0], tmp_path, monkeypatch)
    inv = tmp_path / "inv.ini"
    inv.write_text("oldbox ansible_connection=local\n")
    rc = main(["ping", "-i", str(inv)])
    out, err = capsys.readouterr()
    assert rc == 14, out + err
    assert f"oldbox: python3 on the target is {version}; safeapply needs 3.8 or newer" in out
    assert err.count("\n") == 1 and f"is {version}; safeapply needs 3.8 or newer" in err, err
