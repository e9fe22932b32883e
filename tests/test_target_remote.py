"""Shipping code to hosts (`safeapply.remote`): one deterministic bundle, installed once per version and
then only called by name; one error protocol mapped to safeapply errors in one place; nothing else in
safeapply sends code to a host, and nothing in safeapply/target imports the rest of safeapply."""

from __future__ import annotations

import ast
import json
import sys
import zipfile
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

import pytest

from safeapply import remote
from safeapply.errors import NoPythonError, SafeapplyError, SnapshotError, UsageError
from safeapply.target import entries, layout
from safeapply.transport.base import Input, _no_python
from safeapply.transport.local import LocalTransport

SAFEAPPLY = Path(remote.__file__).parent
TARGET = SAFEAPPLY / "target"


class Counting(LocalTransport):
    """A local host that remembers what each command sent: argv bytes and stdin bytes."""

    def __init__(self) -> None:
        super().__init__("counted")
        self.sent: list[tuple[int, int]] = []

    def _exec(self, argv: Sequence[str], stdin: Input, stdout: BinaryIO | None,
              timeout: float | None) -> tuple[int, bytes, bytes]:
        self.sent.append((sum(len(a) for a in argv), len(stdin) if isinstance(stdin, bytes) else 0))
        return super()._exec(argv, stdin, stdout, timeout)


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Counting:
    monkeypatch.setattr(remote, "install_dir", lambda _t, _sudo: str(tmp_path / "installed"))
    return Counting()


def test_bundle_is_deterministic_and_complete() -> None:
    b = remote.bundle()
    assert remote.bundle.__wrapped__() == b  # built again from the same files: the same bytes, the same name
    names = zipfile.ZipFile(BytesIO(b.data)).namelist()
    want = {"safeapply/" + str(p.relative_to(SAFEAPPLY)) for p in TARGET.rglob("*.py")}
    assert set(names) == want | {"safeapply/__init__.py", "__main__.py"}
    assert len(b.version) == 16 and len(b.data) < 64 << 10


def test_installed_once_then_called_by_name(host: Counting, tmp_path: Path) -> None:
    b = remote.bundle()
    assert json.loads(remote.call(host, "lock.acquire", [str(tmp_path / "lock"), '{"run_id": "r"}', ""])) \
        == {"acquired": True, "held": {}}
    assert [stdin for _argv, stdin in host.sent] == [0, len(b.data), 0]  # missing, sent once, called again
    assert sorted(p.name for p in (tmp_path / "installed").iterdir()) == [f"{b.version}.pyz"]
    host.sent.clear()
    for _ in range(3):  # e.g. the switch's keepalive: the bootstrap and the arguments, never the program
        doc = json.loads(remote.call(host, "deadman.status", ["no-such-run"]))
        assert {k: doc[k] for k in ("armed", "config", "fired", "remaining_s")} == \
            {"armed": False, "config": None, "fired": None, "remaining_s": None}
    assert len(host.sent) == 3 and all(stdin == 0 and argv < 5000 for argv, stdin in host.sent), host.sent


def test_error_line_becomes_the_mapped_error(host: Counting) -> None:
    with pytest.raises(SafeapplyError) as e:
        remote.call(host, "deadman.status", ["../x"])
    assert type(e.value) is SafeapplyError
    assert e.value.message == "counted: dead-man's switch `status` failed (exit 3): bad run id '../x'"
    assert e.value.hint and "systemctl status" in e.value.hint


def test_install_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(remote, "install_dir", lambda _t, _sudo: str(tmp_path / "file" / "target"))
    with pytest.raises(SnapshotError, match=r"cannot install safeapply's on-target programs under .*/file/target"):
        remote.call(LocalTransport("h"), "probe.collect")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize(("entry", "rc", "stderr", "cls", "message", "hint"), [
    ("snapshot.scan", 3, "SAFEAPPLY-ERROR store cannot write the on-target copy under /b: No space left on device",
     SnapshotError, "h: scan: cannot write the on-target copy under /b: No space left on device",
     "the on-target store is not writable (disk full?)"),
    ("snapshot.restore", 3, "SAFEAPPLY-ERROR unknown snapshot x is not on this host", UsageError,
     "h: snapshot x is not on this host", "list snapshots with `safeapply snapshots`"),
    ("snapshot.restore", 3, "SAFEAPPLY-ERROR unsafe manifest path '/x/../y' is not a clean absolute path",
     SnapshotError, "h: restore: manifest path '/x/../y' is not a clean absolute path",
     "refused an unsafe path; nothing was changed"),
    ("snapshot.scan", 1, "Traceback (most recent call last):\nValueError: bad\n"
     "SAFEAPPLY-ERROR internal ValueError: bad",
     SnapshotError, "h: the snapshot program failed (scan, exit 1): ValueError: bad", None),
    ("snapshot.read", 139, "Segmentation fault", SnapshotError,
     "h: the snapshot program failed (read, exit 139): Segmentation fault", None),
    ("deadman.arm", 3, "SAFEAPPLY-ERROR deadman run r1 is already armed on this host", SafeapplyError,
     "h: dead-man's switch `arm` failed (exit 3): run r1 is already armed on this host",
     "check systemd on the host (`systemctl status`) and free space under /var/lib"),
    ("deadman.fire", 1, "KeyError: 'x'\nSAFEAPPLY-ERROR internal KeyError: 'x'", SafeapplyError,
     "h: dead-man's switch `fire` failed (exit 1): KeyError: 'x'",
     "check systemd on the host (`systemctl status`) and free space under /var/lib"),
    ("probe.collect", 3, "SAFEAPPLY-ERROR python python3 on the target is 3.7.16; safeapply needs 3.8 or newer",
     NoPythonError, "h: python3 on the target is 3.7.16; safeapply needs 3.8 or newer",
     "install python3 3.8 or newer there (Ansible 2.19 needs it too)"),
    ("lock.acquire", 1, "SAFEAPPLY-ERROR internal PermissionError: [Errno 13] Permission denied: '/run/x'",
     SafeapplyError, "h: `lock.acquire` failed on the host (exit 1): PermissionError: [Errno 13] Permission "
     "denied: '/run/x'", None),
    ("checks.run", 3, "SAFEAPPLY-ERROR usage unknown entry 'checks.run'", SafeapplyError,
     "h: unknown entry 'checks.run'", "a safeapply bug: the controller and its on-host package disagree"),
])
def test_kind_to_error(entry: str, rc: int, stderr: str, cls: type, message: str, hint: str | None) -> None:
    err = remote.error("h", entry, rc, stderr.encode())
    assert (type(err), err.message, err.hint) == (cls, message, hint)


@pytest.mark.parametrize(("stderr", "no_python"), [
    ("bash: line 1: python3: command not found", True),
    ("sudo: unable to resolve host x: Name or service not known\nsudo: python3: command not found", True),
    ("/usr/bin/env: 'python3': No such file or directory", True),
    ("Traceback (most recent call last):\n  File \"/usr/lib/python3.11/subprocess.py\"\n"
     "FileNotFoundError: [Errno 2] No such file or directory: 'nft'", False),
    ("SAFEAPPLY-ERROR store cannot write under /srv/python3: No such file or directory", False),
])
def test_no_python3_is_told_from_a_program_that_failed(stderr: str, no_python: bool) -> None:
    assert _no_python(stderr.encode()) is no_python


def test_every_entry_is_known_to_the_error_mapping() -> None:
    assert {name.split(".")[0] for name in entries.ENTRIES} == {"probe", "lock", "checks", "tasks", "deadman",
                                                                 "snapshot"}


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


def test_target_is_stdlib_only_and_imports_nothing_of_safeapply() -> None:
    for path in TARGET.rglob("*.py"):
        for name in _imports(path):
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or name.startswith("safeapply.target"), (path, name)


def _programs_in_strings(path: Path) -> list[str]:
    """String literals that are Python programs (they parse, and import something)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "import " in node.value:
            try:
                tree = ast.parse(node.value)
            except SyntaxError:
                continue
            if any(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(tree)):
                found.append(node.value[:60])
    return found


def test_nothing_else_sends_code_to_a_host() -> None:
    """No program in a string literal, no `python3 -c` but the bootstrap's (safeapply.remote)."""
    for path in SAFEAPPLY.rglob("*.py"):
        if path.is_relative_to(TARGET):
            continue
        if path.name not in ("remote.py", "base.py"):
            assert ".python(" not in path.read_text(), path
        if path != SAFEAPPLY / "remote.py":  # its zip's `__main__.py`, two lines
            assert _programs_in_strings(path) == [], path


def test_layout_names_the_on_host_paths() -> None:
    assert layout.INSTALL_DIR == layout.BASE + "/target" and layout.DEADMAN_DIR == layout.BASE + "/deadman"
    for path in SAFEAPPLY.rglob("*.py"):
        if path.name != "layout.py" and path.name != "config.py":  # config.py: the controller's own state dir
            assert '"/var/lib/safeapply' not in path.read_text(), path
