"""One face (issue 12 item 6): every `--json` output is one object whose `schema` is safeapply/<command>/<N>
with the top-level keys the README documents (append-only); errors in one format; usage errors never become
runs; `--version` and shell completion from the installed console script; private Ansible names pinned."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from conftest import Sandbox

from safeapply.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAFEAPPLY = Path(sys.executable).parent / "safeapply"

# command -> (schema version, top-level keys besides "schema"). Append-only: pinned, like the exit codes.
SCHEMAS: dict[str, tuple[int, frozenset[str]]] = {
    "version": (1, frozenset({"versions"})),
    "exit-codes": (1, frozenset({"codes"})),
    "config": (1, frozenset({"file", "settings"})),
    "lint": (1, frozenset({"ok", "strict", "profile", "cached", "files", "tools", "blocking", "warnings",
                           "findings", "accepted"})),
    "history": (1, frozenset({"runs"})),
    "run": (1, frozenset({"id", "status", "exit_code", "started", "finished", "user", "controller", "playbook",
                          "playbook_sha256", "limit", "check_mode"})),  # + the record's sections (see README)
    "show": (1, frozenset({"id", "status", "exit_code", "started", "finished", "user", "controller", "playbook",
                           "playbook_sha256", "limit", "check_mode"})),
    "rollback": (1, frozenset({"hosts"})),
    "scan": (1, frozenset({"hosts"})),
    "plan": (1, frozenset({"hosts"})),
    "ping": (1, frozenset({"hosts"})),
    "snapshot": (1, frozenset({"hosts"})),
    "snapshots": (1, frozenset({"snapshots"})),
    "diff": (1, frozenset({"host", "snapshot", "changes"})),
    "restore": (1, frozenset()),  # the restore report's fields (README)
    "prune": (1, frozenset({"removed", "freed_bytes"})),
    "deadman": (1, frozenset({"run", "status", "exit_code", "hosts"})),
    "sandbox": (1, frozenset({"sandboxes"})),
    "sandbox-leftovers": (1, frozenset({"leftovers"})),
}


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)


def test_every_json_emitter_is_pinned_here_and_in_the_readme() -> None:
    emitted = {m for p in (ROOT / "safeapply" / "cli").glob("*.py")
               for m in re.findall(r'emit_json\(\s*"([\w-]+)"', p.read_text())}
    assert emitted == set(SCHEMAS)
    readme = (ROOT / "README.md").read_text()
    for command, (version, _keys) in SCHEMAS.items():
        assert f"`safeapply/{command}/{version}`" in readme, command


def _json(capsys: pytest.CaptureFixture[str], *argv: str, rc: int = 0) -> dict[str, object]:
    capsys.readouterr()
    assert main(list(argv)) == rc
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out, dict)
    return out


def _pinned(command: str, out: dict[str, object], exact: bool = True) -> None:
    version, keys = SCHEMAS[command]
    assert out["schema"] == f"safeapply/{command}/{version}"
    if exact:
        assert set(out) - {"schema"} == keys
    else:
        assert keys <= set(out)


def test_schemas_of_the_commands_that_need_no_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _pinned("version", _json(capsys, "version", "--json"))
    _pinned("exit-codes", _json(capsys, "exit-codes", "--json"))
    _pinned("config", _json(capsys, "config", "--json"))
    _pinned("history", _json(capsys, "history", "--json"))
    _pinned("snapshots", _json(capsys, "snapshots", "--json"))
    _pinned("prune", _json(capsys, "prune", "--keep", "1", "--json"))
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n")
    _pinned("lint", _json(capsys, "lint", "--json", str(pb)))
    # a run that stops before any host (no host matched): the record's top level as `show` prints it
    run = _json(capsys, "run", "--json", str(pb), "-i", "h1,", "-l", "nomatch", rc=18)
    _pinned("run", run, exact=False)
    _pinned("show", _json(capsys, "show", "last", "--json"), exact=False)


def test_version_from_the_installed_console_script() -> None:
    out = subprocess.run([str(SAFEAPPLY), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["safeapply", metadata.version("safeapply"), "ansible-core",
                           metadata.version("ansible-core"), "ansible-lint", metadata.version("ansible-lint")]


def test_completion_installs_and_completes_from_the_console_script(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "SHELL": "/bin/bash"}
    subprocess.run([str(SAFEAPPLY), "--install-completion", "bash"], env=env, capture_output=True, check=True)
    script = tmp_path / ".bash_completions" / "safeapply.sh"
    assert script.is_file() and str(script) in (tmp_path / ".bashrc").read_text()
    done = subprocess.run([str(SAFEAPPLY)], env={**env, "_SAFEAPPLY_COMPLETE": "complete_bash",
                                                 "COMP_WORDS": "safeapply run --acc", "COMP_CWORD": "2"},
                          capture_output=True, text=True, check=True)
    assert set(done.stdout.split()) == {"--accept", "--accept-new-host-keys"}


def test_usage_errors_are_not_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  tasks: []\n")
    assert main(["run", str(pb), "-i", str(tmp_path / "no-such-inventory")]) == 2
    assert main(["run", str(pb), "--bogus"]) == 2
    assert main(["run", str(tmp_path / "nope.yml")]) == 2
    assert main(["run", str(pb), "-i", "h1,", "-e", f"@{tmp_path / 'no-such-vars.yml'}"]) == 2
    err = capsys.readouterr().err
    assert [ln.split(":")[0:2] for ln in err.splitlines()] == [["safeapply", " error"]] * 4, err
    assert _json(capsys, "history", "--json")["runs"] == []


def test_a_failed_run_says_its_error_in_the_one_format_and_ends_with_its_summary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  tasks: []\n")
    capsys.readouterr()
    assert main(["run", str(pb), "-i", "h1,", "-l", "nomatch"]) == 18
    lines = capsys.readouterr().err.strip().splitlines()
    assert "safeapply: error: no host matched 'all' (limit 'nomatch') (check the pattern" in "\n".join(lines)
    assert re.fullmatch(r"run \S+: no host matched .* \(exit 18\)", lines[-1]), lines


PRIVATE_ANSIBLE = [  # (module, name): where safeapply uses it
    ("ansible._internal._display_utils", "DeferredWarningContext"),  # ansible_errors.ansible_warnings
    ("ansible._internal._templating._jinja_common", "UndecryptableVaultError"),  # ansible_errors.vault_errors
    ("ansible._internal._templating", "_jinja_plugins"),  # intent.load
    ("ansible._internal._templating._jinja_plugins", "lookup_loader"),  # intent.load swaps it
    ("ansible._internal._templating", "_template_vars"),  # intent.extract
    ("ansible.executor.task_result", "_RawTaskResult"),  # intent.load
    ("ansible.utils.collection_loader._collection_finder", "_get_collection_role_path"),  # lint.project
    ("ansible._internal._templating._jinja_common", "UndecryptableVaultError"),  # ansible_errors
]


@pytest.mark.parametrize(("module", "name"), PRIVATE_ANSIBLE)
def test_private_ansible_names_still_exist(module: str, name: str) -> None:
    import importlib

    found = hasattr(importlib.import_module(module), name)
    if not found:  # a submodule is an attribute only once something imported it
        with contextlib.suppress(ImportError):
            found = importlib.import_module(f"{module}.{name}") is not None
    assert found, f"ansible-core moved {module}.{name}"


def test_every_private_ansible_name_used_is_pinned() -> None:
    used = set()
    for p in (ROOT / "safeapply").rglob("*.py"):
        for m in re.finditer(r"from (ansible\S*) import (\w+)", p.read_text()):
            if "._" in m.group(1) or m.group(2).startswith("_"):
                used.add((m.group(1), m.group(2)))
    assert used <= set(PRIVATE_ANSIBLE), used - set(PRIVATE_ANSIBLE)


def test_dependency_floors_are_the_tested_majors() -> None:
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lock = dict(ln.split("==") for ln in (ROOT / "requirements-lock.txt").read_text().splitlines()
                if "==" in ln and not ln.startswith("#"))
    lock = {k.lower(): v for k, v in lock.items()}
    for dep in deps:
        name, floor = re.split(r">=", dep.split(",")[0])
        tested = lock[name.lower()]
        same = 2 if name == "ansible-core" or floor.startswith("0.") else 1  # 0.x: the minor is the major
        assert floor.split(".")[:same] == tested.split(".")[:same], f"{name}: floor {floor}, tested {tested}"


@pytest.mark.sandbox
def test_schemas_of_the_commands_that_reach_a_host(host_a: Sandbox, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The live shapes, against a real host: what each command prints, not what a dict literal says."""
    inv, name = str(host_a.inventory), host_a.name
    _pinned("ping", _json(capsys, "ping", "-i", inv, name, "--json"))
    _pinned("scan", _json(capsys, "scan", "-i", inv, name, "--json"))
    _pinned("snapshot", _json(capsys, "snapshot", "-i", inv, name, "--json"))
    _pinned("diff", _json(capsys, "diff", "-i", inv, name, "--json"))
    snap = _json(capsys, "snapshots", "--json")["snapshots"]
    assert isinstance(snap, list) and snap
    _pinned("restore", _json(capsys, "restore", "-i", inv, name, str(snap[0]["id"]), "--yes", "--json"),
            exact=False)
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.copy:\n"
                  "        {dest: /etc/safeapply-schema-test, content: x, mode: '0644'}\n")
    _pinned("plan", _json(capsys, "plan", str(pb), "-i", inv, "--json"))
    run = _json(capsys, "run", str(pb), "-i", inv, "--yes", "--settle", "0", "--json")
    _pinned("run", run, exact=False)
    _pinned("deadman", _json(capsys, "deadman", str(run["id"]), "--json"))
    _pinned("rollback", _json(capsys, "rollback", str(run["id"]), "--yes", "--json"))
    assert host_a.sh_rc("test -e /etc/safeapply-schema-test")[0] == 1  # the shared host is put back
    _pinned("sandbox", _json(capsys, "sandbox", "list", "--json"))
    # exit 1 with the running host_a listed: "leftovers" means anything of this prefix still there
    _pinned("sandbox-leftovers", _json(capsys, "sandbox", "leftovers", "--json", rc=1))
