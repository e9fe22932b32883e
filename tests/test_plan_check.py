"""`plan --check` and `run --plan-check` on a real host (issue 13 item 5): Ansible's own check mode resolves what the
static plan cannot (a port from a lookup, an include named by a fact the scan does not give, a port read from
the host), the same rules find the squatter, and the host is left as it was."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Sandbox

from safeapply.cli import main

pytestmark = pytest.mark.sandbox

DATA = Path(__file__).parent / "plan_data"
PORT = 18095  # tests/plan_data/roles/pc_app/files/port.txt
STARTER = "pc_app : Start pc-app"


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(scope="module")
def host(sandbox_factory: Callable[[str], Sandbox]) -> Sandbox:
    return sandbox_factory("pchk")


@pytest.fixture
def squatter(host: Sandbox) -> Iterator[None]:
    """A transient unit, pc-squat.service, listening on the port the role's unit will bind."""
    host.sh(f"systemd-run --unit pc-squat python3 -m http.server {PORT} && "
            f"for i in $(seq 50); do ss -ltn | grep -q :{PORT} && break; sleep 0.1; done")
    yield
    host.sh("systemctl stop pc-squat; true")


def _etc(host: Sandbox) -> str:
    """Every entry under /etc (type, mode, owner, link target) and every file's checksum."""
    return host.sh("find /etc -xdev -printf '%p %y %m %U:%G %l\\n' | sort && "
                   "find /etc -xdev -type f -print0 | sort -z | xargs -0 sha256sum")


def _plan(playbook: str, host: Sandbox, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    rc = main(["plan", str(DATA / playbook), "-i", str(host.inventory), "--json", *extra])
    return rc, json.loads(capsys.readouterr().out)["hosts"][host.name]


def _blocking(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["severity"] == "blocking"]


def test_the_static_plan_cannot_see_the_port(host: Sandbox, squatter: None, capsys: pytest.CaptureFixture[str]) -> None:
    rc, report = _plan("check.yml", host, capsys)
    assert (rc, _blocking(report)) == (0, [])
    assert [(f["code"], f["task"]["name"]) for f in report["findings"]] == \
        [("not-analysed", "pc_app : Tasks for this kind of machine")]
    assert "check" not in report


def test_plan_check_blocks_naming_the_holder_and_changes_nothing(
        host: Sandbox, squatter: None, capsys: pytest.CaptureFixture[str]) -> None:
    before = _etc(host)
    rc, report = _plan("check.yml", host, capsys, "--check")
    assert rc == 17
    [f] = _blocking(report)
    assert (f["code"], f["unit"], f["port"], f["task"]["name"], f["seen_by"]) == \
        ("port-in-use", "pc-squat.service", PORT, STARTER, "check")
    assert "python3" in f["message"]
    assert report["check"]["seconds"] > 0 and report["check"]["from_check"] >= 4
    assert "check mode:" in report["verdict"]
    assert _etc(host) == before


def test_plan_check_with_nothing_listening_passes_and_prints_its_cost(
        host: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["plan", str(DATA / "check.yml"), "-i", str(host.inventory), "--check"]) == 0
    out = capsys.readouterr().out
    assert "plan --check: Ansible's check mode (ansible-playbook --check --diff) ran in " in out
    assert "no collisions among the" in out and "resolved by Ansible's check run" in out


def test_run_plan_check_blocks_before_any_change(host: Sandbox, squatter: None,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(DATA / "check.yml"), "-i", str(host.inventory), "--plan-check", "--yes",
                 "--settle", "1"]) == 17
    assert host.sh_rc("ls /etc/pc-app.conf /etc/systemd/system/pc-app.service")[0] != 0
    capsys.readouterr()
    assert main(["show", "last", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["plan"]["check"]["seconds"] > 0 and rec["timings"]["plan-check"] > 0
    assert [f["unit"] for f in rec["plan"]["findings"][host.name] if f["severity"] == "blocking"] == \
        ["pc-squat.service"]


@pytest.fixture
def port_file(host: Sandbox) -> Iterator[None]:
    host.sh(f"echo {PORT} > /etc/pc-port")
    yield
    host.sh("rm -f /etc/pc-port /etc/pc-read")


def test_check_mode_false_seen_by_the_static_plan_is_refused_before_the_check_run(
        host: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  tasks:\n    - name: Mark it\n      ansible.builtin.command: touch /etc/pc-read\n"
                  "      check_mode: false\n")
    capsys.readouterr()
    assert main(["plan", str(pb), "-i", str(host.inventory), "--check"]) == 17
    out = capsys.readouterr().out
    assert "Ansible's check mode was not run" in out and "check-mode-false: task 'Mark it'" in out
    assert host.sh_rc("test -e /etc/pc-read")[0] != 0


def test_check_mode_false_hidden_in_an_include_is_refused_unless_accepted(
        host: Sandbox, squatter: None, port_file: None, capsys: pytest.CaptureFixture[str]) -> None:
    """The port is read from the host by a task marked `check_mode: false` (it also touches /etc/pc-read) in an
    include the static plan cannot follow: the check run stops before it, the plan blocks naming it, the host is
    unchanged; accepted, it runs for real and the squatter is found."""
    before = _etc(host)
    rc, report = _plan("check-registered.yml", host, capsys, "--check")
    assert rc == 17
    assert [(f["code"], f["task"]["name"]) for f in _blocking(report)] == \
        [("check-mode-false", "Read the port the host was given")]
    assert _etc(host) == before
    rc, report = _plan("check-registered.yml", host, capsys, "--check", "--allow-check-mode-false")
    assert rc == 17
    assert [(f["code"], f["unit"], f["task"]["name"]) for f in _blocking(report)] == \
        [("port-in-use", "pc-squat.service", STARTER)]
    assert "check-mode-false" in {f["code"] for f in report["findings"] if f["severity"] == "warning"}
    assert host.sh_rc("test -e /etc/pc-read")[0] == 0  # accepted: it ran for real
