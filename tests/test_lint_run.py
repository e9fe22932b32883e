"""Lint inside `safeapply run` on a real sandbox host (issue 12 item 4): the inventory's group_vars count as
defined, and `--accept` lets a blocking finding through with the acceptance in the run record."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Sandbox

from safeapply.cli import main

pytestmark = pytest.mark.sandbox


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(scope="module")
def host(sandbox_factory: Callable[[str], Sandbox]) -> Sandbox:
    return sandbox_factory("lint1")


def _inventory(tmp_path: Path, host: Sandbox) -> Path:
    """The sandbox's inventory in a directory of its own, with group_vars beside it (outside the project)."""
    inv = tmp_path / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "hosts.yml").write_text(host.inventory.read_text())
    (inv / "group_vars" / "all.yml").write_text("cf_motd_text: from the inventory\n")
    return inv


def _last(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["show", "last", "--json"]) == 0
    return dict(json.loads(capsys.readouterr().out))


def test_inventory_group_vars_are_defined_for_lint(host: Sandbox, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    pb = proj / "site.yml"
    pb.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - name: motd\n      ansible.builtin.copy:\n"
                  "        dest: /etc/cf-motd\n        content: \"{{ cf_motd_text }}\\n\"\n        mode: \"0644\"\n")
    try:
        rc = main(["run", str(pb), "-i", str(_inventory(tmp_path, host)), "--yes", "--settle", "0"])
        assert rc == 0, capsys.readouterr().err
        assert host.sh("cat /etc/cf-motd") == "from the inventory\n"
        rec = _last(capsys)
        lint = rec["lint"]
        assert isinstance(lint, dict)
        assert not [f for f in lint["findings"] if f["rule"] == "undefined-variable"]
    finally:
        host.sh("rm -f /etc/cf-motd")


def test_accept_lets_a_blocking_finding_through_and_the_record_keeps_it(
        host: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pb = tmp_path / "open.yml"
    pb.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - name: shared scratch file\n"
                  "      ansible.builtin.copy: {dest: /etc/cf-open.conf, content: \"x\\n\", mode: \"0666\"}\n")
    try:
        assert main(["run", str(pb), "-i", str(host.inventory), "--yes", "--settle", "0"]) == 16
        assert host.sh_rc("test -e /etc/cf-open.conf")[0] != 0
        spec = "writable-system-path:open.yml:5"
        assert main(["run", str(pb), "-i", str(host.inventory), "--yes", "--settle", "0", "--accept", spec]) == 0
        assert host.sh("stat -c %a /etc/cf-open.conf") == "666\n"
        lint = _last(capsys)["lint"]
        assert isinstance(lint, dict)
        assert [(a["rule"], a["accepted_by"]) for a in lint["accepted"]] == [("writable-system-path", spec)]
    finally:
        host.sh("rm -f /etc/cf-open.conf")
