"""On a real sandbox host: the plan and the apply consider the tasks ansible-playbook runs (tags, `never`),
variables beside the playbook reach the plan, and the run shows what happened (a failed task's stderr, in
the run output and in `show RUN --log`; `--check --diff` diffs with secrets masked; the PLAY RECAP)."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Sandbox

from safeapply.cli import main

pytestmark = pytest.mark.sandbox

PORT = 18090
OLD = "ta-old.service"


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(scope="module")
def host(sandbox_factory: Callable[[str], Sandbox]) -> Sandbox:
    return sandbox_factory("out1")


@pytest.fixture
def old_unit(host: Sandbox) -> Iterator[None]:
    """ta-old.service holds tcp/18090 (a real listener) before the play."""
    host.sh(f"printf '[Service]\\nExecStart=/usr/bin/python3 -m http.server {PORT}\\n' > /etc/systemd/system/{OLD}"
            f" && systemctl daemon-reload && systemctl start {OLD} && for i in $(seq 50); do ss -ltn | "
            f"grep -q :{PORT} && break; sleep 0.1; done")
    yield
    host.sh(f"systemctl stop {OLD} ta-new.service 2>/dev/null; rm -f /etc/systemd/system/{OLD} "
            "/etc/systemd/system/ta-new.service /etc/ta-*.conf; systemctl daemon-reload; true")


def _pb(d: Path, tasks: str, name: str = "pb.yml") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    p.write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n{tasks}")
    return p


def _new_unit(port: str, tags: str = "") -> str:
    """Write and start ta-new.service listening on `port` (a literal or a template)."""
    tag = f"      tags: [{tags}]\n" if tags else ""
    return (f"""    - name: write the new unit
      ansible.builtin.copy:
        dest: /etc/systemd/system/ta-new.service
        content: "[Service]\\nExecStart=/usr/bin/python3 -m http.server {port}\\n"
{tag}    - name: start the new unit
      ansible.builtin.systemd: {{name: ta-new.service, state: started, daemon_reload: true}}
{tag}""")


WRITE_PLAIN = """    - name: write the plain file
      ansible.builtin.copy: {dest: /etc/ta-plain.conf, content: "plain\\n"}
"""
WRITE_X = """    - name: write the x file
      ansible.builtin.copy: {dest: /etc/ta-x.conf, content: "x\\n"}
      tags: [x]
"""


def _plan(pb: Path, host: Sandbox, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, list[dict[str, Any]]]:
    capsys.readouterr()
    rc = main(["plan", str(pb), "-i", str(host.inventory), "--json", *extra])
    out = json.loads(capsys.readouterr().out)
    report = (out.get("hosts") or out)[host.name]
    return rc, [f for f in report["findings"] if f["severity"] == "blocking"]


def _run(pb: Path, host: Sandbox, *extra: str) -> int:
    return main(["run", str(pb), "-i", str(host.inventory), "--yes", "--settle", "1", *extra])


def test_a_never_tagged_colliding_task_does_not_block_unless_selected(
        host: Sandbox, old_unit: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pb = _pb(tmp_path, WRITE_PLAIN + _new_unit(str(PORT), "never"))
    assert _plan(pb, host, capsys) == (0, [])
    rc, [f] = _plan(pb, host, capsys, "-t", "never")
    assert (rc, f["code"], f["unit"], f["port"]) == (17, "port-in-use", OLD, PORT)
    assert _run(pb, host) == 0
    assert host.sh("cat /etc/ta-plain.conf") == "plain\n"
    assert host.sh_rc("systemctl is-active ta-new.service")[1].strip() != "active"
    assert _run(pb, host, "--tags", "never") == 17  # the plan of the run sees it too


def test_tags_select_what_apply_runs(host: Sandbox, old_unit: None, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    pb = _pb(tmp_path, WRITE_PLAIN + WRITE_X + _new_unit(str(PORT)))
    assert _plan(pb, host, capsys)[0] == 17
    assert _plan(pb, host, capsys, "-t", "x") == (0, [])
    assert _run(pb, host, "-t", "x") == 0
    assert host.sh("cat /etc/ta-x.conf") == "x\n"
    assert host.sh_rc("test -e /etc/ta-plain.conf")[0] != 0
    assert _run(pb, host, "--skip-tags", "x", "--", "--start-at-task", "write the plain*") == 17


def test_a_port_from_host_vars_beside_the_playbook_blocks_at_plan(
        host: Sandbox, old_unit: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "project"
    (project / "host_vars").mkdir(parents=True)
    (project / "host_vars" / f"{host.name}.yml").write_text(f"app_port: {PORT}\n")
    pb = _pb(project, _new_unit("{{ app_port }}"))
    rc, [f] = _plan(pb, host, capsys)
    assert (rc, f["code"], f["unit"], f["port"], f["task"]["name"]) == (17, "port-in-use", OLD, PORT,
                                                                         "start the new unit")
    assert _run(pb, host) == 17
    assert host.sh_rc("test -e /etc/systemd/system/ta-new.service")[0] != 0


def test_a_failing_command_shows_its_stderr_in_the_run_and_in_its_log(
        host: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pb = _pb(tmp_path, """    - name: list what is not there
      ansible.builtin.command: ls /ta-not-there
""")
    capsys.readouterr()
    assert _run(pb, host) == 20
    out = capsys.readouterr()
    shown = out.out + out.err
    assert "ls: cannot access '/ta-not-there': No such file or directory" in shown
    assert "PLAY RECAP" in shown and "rolled back=restored" in shown
    capsys.readouterr()
    assert main(["show", "last", "--log"]) == 0
    log = capsys.readouterr().out
    assert "ls: cannot access '/ta-not-there'" in log and "TASK [list what is not there]" in log
    [path] = (tmp_path / "state" / "logs" / "runs").glob("*.log")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_failed_loop_item_shows_its_item_and_stderr(host: Sandbox, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    pb = _pb(tmp_path, """    - name: loop that fails on one item
      ansible.builtin.command: "ls {{ item }}"
      loop: [/etc/hostname, /ta-item-not-there]
""")
    capsys.readouterr()
    assert _run(pb, host) == 20
    shown = "".join(capsys.readouterr())
    assert "(item /ta-item-not-there)" in shown
    assert "ls: cannot access '/ta-item-not-there'" in shown


def test_check_diff_prints_the_diff_with_the_secret_masked(host: Sandbox, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    pb = _pb(tmp_path, """    - name: write the app config
      ansible.builtin.copy:
        dest: /etc/ta-app.conf
        content: "listen 8080\\npassword = s3cretValue123\\n"
""")
    capsys.readouterr()
    assert _run(pb, host, "--check", "--diff") == 0
    shown = "".join(capsys.readouterr())
    assert "+listen 8080" in shown and "/etc/ta-app.conf" in shown
    assert "s3cretValue123" not in shown and "+password = <redacted>" in shown
    assert host.sh_rc("test -e /etc/ta-app.conf")[0] != 0


def test_verbose_streams_ansibles_own_output(host: Sandbox, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    pb = _pb(tmp_path, """    - name: say something
      ansible.builtin.debug: {msg: ta-verbose-marker}
""")
    capsys.readouterr()
    assert _run(pb, host, "-C") in (0, 6)
    assert "TASK [say something]" not in "".join(capsys.readouterr())
    assert _run(pb, host, "-C", "-vv") in (0, 6)
    assert "TASK [say something]" in "".join(capsys.readouterr())
