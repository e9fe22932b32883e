"""Bad input against every command, for real: each ends in one readable line and its documented exit code,
never a traceback, and never a half-done host. One shared sandbox (module scope)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Sandbox

from safeapply.cli import main

pytestmark = pytest.mark.sandbox

OK_PB = "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"


@pytest.fixture(scope="module")
def host(sandbox_factory: Callable[[str], Sandbox]) -> Sandbox:
    return sandbox_factory("bad1")


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(args))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _one_line(err: str, *words: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    for w in words:
        assert w in lines[0], err
    return lines[0]


def _file(tmp_path: Path, name: str, data: str | bytes) -> str:
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(p)


# ---- inventories ------------------------------------------------------------------------------------------

BAD_INVENTORIES = {"ini": ("inv.ini", "[web\nfoo ansible_host=\n"), "yaml": ("inv.yml", "all: [unclosed\n")}


@pytest.mark.parametrize("kind", sorted(BAD_INVENTORIES))
@pytest.mark.parametrize("cmd", ["run", "plan", "scan", "ping"])
def test_inventory_that_does_not_parse(cmd: str, kind: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    inv = _file(tmp_path, *BAD_INVENTORIES[kind])
    args = [cmd, _file(tmp_path, "pb.yml", OK_PB)] if cmd in ("run", "plan") else [cmd, "all"]
    rc, _, err = _cli(capsys, *args, "-i", inv, "--yes" if cmd == "run" else "--json")
    assert rc == 2, err
    _one_line(err, "cannot parse inventory", Path(inv).name)


@pytest.mark.parametrize("kind", sorted(BAD_INVENTORIES))
def test_bad_input_before_any_host_is_not_a_run(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 12: an inventory that does not parse (or a playbook that does not load) is the user's typo, not a
    run: it is never recorded in `history`."""
    inv = _file(tmp_path, *BAD_INVENTORIES[kind])
    assert _cli(capsys, "run", _file(tmp_path, "pb.yml", OK_PB), "-i", inv, "--yes")[0] == 2
    assert _cli(capsys, "run", _file(tmp_path, "bad.yml", "- hosts: all\n  tasks: [\n"), "-i", inv, "--yes")[0] == 2
    rc, out, _ = _cli(capsys, "history", "--json")
    assert rc == 0 and json.loads(out)["runs"] == []


def test_missing_inventory_in_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _cli(capsys, "run", _file(tmp_path, "pb.yml", OK_PB), "-i", "nope.ini", "--yes")
    assert rc == 2
    _one_line(err, "inventory nope.ini does not exist")


def test_port_that_is_not_a_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inv = _file(tmp_path, "inv.ini", "h1 ansible_host=127.0.0.1 ansible_port=abc\n")
    rc, _, err = _cli(capsys, "ping", "all", "-i", inv)
    assert rc == 2
    _one_line(err, "h1: SSH port 'abc' is not a port number")


# ---- playbooks and extra vars -----------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "words"), [
    (b"\xf7\xfe\x00garbage\xff" * 20, "not UTF-8"),
    ("hosts: all\ntasks: []\n", "not a list of plays"),
    ("- hosts: all\n  tasks: [\n", "YAML parsing failed"),
    ("", "Empty playbook"),
], ids=["binary", "dict", "invalid-yaml", "empty"])
@pytest.mark.parametrize("cmd", ["run", "plan"])
def test_bad_playbook(cmd: str, content: str | bytes, words: str, host: Sandbox, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    pb = _file(tmp_path, "pb.yml", content)
    rc, out, err = _cli(capsys, cmd, pb, "-i", str(host.inventory), "--json", *(["--yes"] if cmd == "run" else []))
    assert rc == 2, err
    if cmd == "plan":
        assert out == ""
        _one_line(err, "cannot load playbook", words)
    else:
        assert json.loads(out)["exit_code"] == 2
        assert words in json.loads(out)["notes"]["message"]
        assert "WARNING" not in err, err


@pytest.mark.parametrize("cmd", ["run", "plan"])
def test_yaml_error_names_file_line_and_column(cmd: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 14: `run` reports a YAML error with where it is, not only what it is."""
    pb = _file(tmp_path, "pb.yml", "- hosts: all\n  tasks:\n    - name: x\n      copy: {dest: /tmp/x\n"
               "    - debug: msg=hi\n")
    inv = _file(tmp_path, "inv.ini", "h1 ansible_connection=local\n")
    rc, _out, err = _cli(capsys, cmd, pb, "-i", inv, *(["--yes"] if cmd == "run" else []))
    assert rc == 2, err
    line = [ln for ln in err.splitlines() if "YAML parsing failed" in ln]
    assert line and f"{pb}:5:12" in line[0], err


@pytest.mark.parametrize(("value", "words"), [
    ("{bad", "YAML parsing failed"),
    ("@missing.json", "No such file or directory"),
    ("[1]", "not a mapping"),
])
@pytest.mark.parametrize("cmd", ["run", "plan"])
def test_bad_extra_vars(cmd: str, value: str, words: str, host: Sandbox, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    pb = _file(tmp_path, "pb.yml", OK_PB)
    rc, _, err = _cli(capsys, cmd, pb, "-i", str(host.inventory), "-e", value, *(["--yes"] if cmd == "run" else []))
    assert rc == 2, err
    _one_line(err, "extra vars", words)


# ---- the state dir and the run history --------------------------------------------------------------------

@pytest.mark.parametrize("args", [["history", "--json"], ["show", "last"], ["rollback", "last", "--yes"],
                                  ["deadman", "last"]], ids=lambda a: a[0])
def test_corrupt_history(args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "runs.sqlite").write_bytes(os.urandom(8192))
    rc, out, err = _cli(capsys, *args)
    assert rc == 3 and out == ""
    _one_line(err, "run history", "is damaged", "move it aside")


def test_corrupt_history_stops_run_before_any_host(host: Sandbox, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "runs.sqlite").write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    rc, _, err = _cli(capsys, "run", _file(tmp_path, "pb.yml", OK_PB), "-i", str(host.inventory), "--yes")
    assert rc == 3
    _one_line(err, "run history")


@pytest.mark.parametrize("args", [["history"], ["show", "last", "--json"]], ids=lambda a: a[0])
def test_state_dir_is_a_file(args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "state").write_text("not a dir")
    rc, out, err = _cli(capsys, *args)
    assert rc == 3 and out == ""
    _one_line(err, "cannot use the state dir", "not a directory", "SAFEAPPLY_STATE_DIR")


def test_state_dir_is_a_file_snapshot_fails_before_host_work(host: Sandbox, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "state").write_text("not a dir")
    before = host.sh("ls -R /var/lib/safeapply 2>/dev/null || true")
    rc, _, err = _cli(capsys, "snapshot", host.name, "-i", str(host.inventory))
    assert rc == 15
    assert "SAFEAPPLY_STATE_DIR" in err and "free some space" not in err and "scanning" not in err, err
    assert host.sh("ls -R /var/lib/safeapply 2>/dev/null || true") == before


def test_lint_with_unusable_state_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "state").write_text("not a dir")
    rc, _, err = _cli(capsys, "lint", _file(tmp_path, "pb.yml", OK_PB))
    assert "internal error" not in err
    assert rc == 0


# ---- snapshots --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("root", "words"), [("etc", "not an absolute path"), ("/etc/../tmp", "contains '..'")])
def test_bad_snapshot_root(root: str, words: str, host: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _cli(capsys, "snapshot", host.name, "-i", str(host.inventory), "--root", root)
    assert rc == 2
    assert words in err and "scanning" not in err, err


def test_snapshot_of_another_host_is_refused(host: Sandbox, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _cli(capsys, "snapshot", host.name, "-i", str(host.inventory), "--root", "/etc/hostname", "--json")
    assert rc == 0
    sid = json.loads(out)["hosts"][host.name]["id"]
    other = tmp_path / "other.yml"
    other.write_text(host.inventory.read_text().replace(f"    {host.name}:", "    alias:", 1))
    for cmd in (["restore", "--yes"], ["diff"]):
        rc, _, err = _cli(capsys, cmd[0], "alias", sid, "-i", str(other), *cmd[1:])
        assert rc == 2
        _one_line(err, "no snapshot of alias")


@pytest.mark.parametrize("ref", ["deadbeef", "2"], ids=["unknown", "ambiguous-or-unknown"])
def test_unknown_snapshot_id(ref: str, host: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(2):
        assert _cli(capsys, "snapshot", host.name, "-i", str(host.inventory), "--root", "/etc/hostname")[0] == 0
    rc, out, err = _cli(capsys, "restore", host.name, ref, "-i", str(host.inventory), "--yes", "--json")
    assert rc == 2 and out == ""
    _one_line(err, repr(ref))


def test_restore_without_tty_refuses(host: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(capsys, "snapshot", host.name, "-i", str(host.inventory), "--root", "/etc/hostname")[0] == 0
    rc, _, err = _cli(capsys, "restore", host.name, "latest", "-i", str(host.inventory))
    assert rc == 2
    _one_line(err, "--yes")


def test_snapshot_failure_is_one_line(host: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _cli(capsys, "snapshot", host.name, "-i", str(host.inventory), "--root", "etc")
    assert rc == 2
    _one_line(err, "not an absolute path")


# ---- runs: ids, usage, options ----------------------------------------------------------------------------

def test_unknown_and_ambiguous_run_ids(host: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pb = _file(tmp_path, "pb.yml", "- hosts: all\n  tasks: [\n")
    for _ in range(2):  # two recorded runs (both exit 2, nothing touched)
        assert _cli(capsys, "run", pb, "-i", str(host.inventory), "--yes")[0] == 2
    for cmd in (["show"], ["rollback", "--yes"], ["deadman"]):
        rc, out, err = _cli(capsys, cmd[0], "nope", *cmd[1:], "--json")
        assert rc == 2 and out == ""
        _one_line(err, "no run 'nope'")
    rc, out, err = _cli(capsys, "show", "2", "--json")
    assert rc == 2 and out == ""
    _one_line(err, "ambiguous")


@pytest.mark.parametrize("url", ["ftp://x", "not a url"])
def test_notify_bad_scheme(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _cli(capsys, "run", _file(tmp_path, "pb.yml", OK_PB), "-i", "x,", "--yes", "--notify", url)
    assert rc == 2
    _one_line(err, "--notify", "http(s)")


def test_usage_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _cli(capsys, "prune", "--keep", "0")
    assert rc == 2
    _one_line(err, "--keep")


def test_metrics_dir_not_writable_stops_before_apply(host: Sandbox, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _cli(capsys, "run", _file(tmp_path, "pb.yml", OK_PB), "-i", str(host.inventory), "--yes",
                      "--deadman-deadline", "0", "--metrics-dir", _file(tmp_path, "afile", "x"))
    assert rc == 2, err
    _one_line(err, "--metrics-dir")


def test_negative_settle_is_refused(host: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _cli(capsys, "run", _file(tmp_path, "pb.yml", OK_PB), "-i", str(host.inventory), "--check",
                      "--settle", "-1")
    assert rc == 2
    _one_line(err, "--settle")


def test_run_json_error_has_its_line_on_stderr(host: Sandbox, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    pb = _file(tmp_path, "pb.yml", "hosts: all\n")
    rc, out, err = _cli(capsys, "run", pb, "-i", str(host.inventory), "--yes", "--json")
    assert rc == 2 and json.loads(out)["exit_code"] == 2
    assert "not a list of plays" in err.strip().splitlines()[-1], err


# ---- Ctrl-C mid-apply -------------------------------------------------------------------------------------

LISTING = ("find /etc -xdev -printf '%p %m %s\\n' | sort; "
           "find /usr/local/lib/systemd -name 'safeapply-deadman-*' 2>/dev/null; true")


@pytest.fixture(scope="module")
def ctrl_c(host: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, str, str]:
    """Ctrl-C on a terminal signals the whole foreground process group: safeapply, ansible-playbook and the
    SSH ProxyCommands. Returns (exit code, output, listing before, listing after)."""
    tmp = tmp_path_factory.mktemp("ctrl-c")
    pb = _file(tmp, "slow.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: w\n"
               "      ansible.builtin.copy: {dest: /etc/bad-sigint, content: \"x\\n\", mode: \"0644\"}\n"
               "    - name: detached\n      ansible.builtin.command: sleep 96\n      async: 300\n      poll: 0\n"
               "      changed_when: false\n"
               "    - name: wait\n      ansible.builtin.command: sleep 97\n      changed_when: false\n")
    before = host.sh(LISTING)
    proc = subprocess.Popen([sys.executable, "-m", "safeapply", "run", pb, "-i", str(host.inventory), "--yes"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "SAFEAPPLY_STATE_DIR": str(tmp / "state")})
    try:
        while host.sh_rc("pgrep -f 'sleep 9[7]'")[0] != 0:  # the slow task runs on the host
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        out = proc.communicate(timeout=300)[0]
        if host.sh_rc("pgrep -f 'sleep 9[67]'")[0] == 0:
            out += "\nTEST: the interrupted task still runs on the host"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        host.sh("pkill -f 'sleep 9[67]' || true")
    return proc.returncode, out, before, host.sh(LISTING)


def test_ctrl_c_mid_apply_rolls_back_and_exits_130(ctrl_c: tuple[int, str, str, str]) -> None:
    rc, out, before, after = ctrl_c
    assert rc == 130, out
    assert "Traceback" not in out, out
    assert "the interrupted task still runs" not in out  # rollback stopped it before restoring
    assert after == before  # /etc restored, and the dead-man's switch disarmed and removed


def test_ctrl_c_ends_with_one_line(ctrl_c: tuple[int, str, str, str]) -> None:
    assert [ln for ln in ctrl_c[1].splitlines() if ln.startswith("safeapply:")] == ["safeapply: interrupted"]
