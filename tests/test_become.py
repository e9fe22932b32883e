"""Become, for safeapply's own root work, on a real host whose sudo needs a password (set up here over SSH as
root, as an admin would: `deploy ALL=(ALL) ALL` with a password), through the CLI and an inventory file:
snapshot, scan, restore, `run` with the dead-man's switch armed and disarmed, su; a wrong password is one line,
exit 13, host untouched; NOPASSWD keeps working with a password set; ansible_python_interpreter is used for every
on-target program and a bogus one is exit 14 naming the variable."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Sandbox

from safeapply.cli import main
from safeapply.errors import ExitCode, SudoError, UsageError
from safeapply.inventory import resolve_hosts
from safeapply.records import RunStore
from safeapply.transport.become import Become

PASSWORD = "s3cret word"  # a space: the line is sent as it is
ROOT_PASSWORD = "r00t pw"
SUDOERS = "deploy ALL=(ALL) ALL\n"
STATE_OF_HOST = "find /var/lib/safeapply /usr/local/lib/systemd /etc -xdev 2>/dev/null | sort | md5sum"


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(scope="module")
def host(sandbox_factory: Callable[[str], Sandbox]) -> Sandbox:
    """deploy's sudo asks for its password; root has one too (for su)."""
    sb = sandbox_factory("become")
    sb.sh(f"echo 'deploy:{PASSWORD}' | chpasswd && echo 'root:{ROOT_PASSWORD}' | chpasswd && "
          f"printf '{SUDOERS}' > /etc/sudoers.d/deploy && chmod 0440 /etc/sudoers.d/deploy")
    assert sb.sh_rc("sudo -n true", user="deploy")[0] != 0  # really needs the password now
    return sb


def _inventory(tmp_path: Path, sb: Sandbox, **changes: str) -> str:
    data = yaml.safe_load(sb.inventory.read_text())
    data["all"]["hosts"][sb.name].update({"ansible_user": "deploy", **changes})
    path = tmp_path / f"inv-{len(list(tmp_path.glob('inv-*')))}.yml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit code and stdout (with --json), or stdout and stderr together."""
    capsys.readouterr()
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out if "--json" in argv and rc == 0 else cap.out + cap.err


@pytest.mark.sandbox
def test_snapshot_scan_restore_with_a_sudo_password(host: Sandbox, tmp_path: Path, capsys) -> None:
    inv = _inventory(tmp_path, host, ansible_become_password=PASSWORD)
    rc, out = cli(capsys, "ping", "-i", inv)
    assert rc == 0 and "root via sudo (password)" in out, out
    rc, out = cli(capsys, "snapshot", host.name, "-i", inv, "--json")
    assert rc == 0, out
    sid = json.loads(out)["hosts"][host.name]["id"]
    rc, out = cli(capsys, "scan", host.name, "-i", inv, "--json")
    assert rc == 0, out
    listeners = json.loads(out)["hosts"][host.name]["listeners"]
    assert any(o["process"] == "sshd" for lst in listeners for o in lst["owners"])  # root sees owners
    host.sh("echo changed > /etc/motd && touch /etc/become-added")
    rc, out = cli(capsys, "restore", host.name, sid, "-i", inv, "--yes", "--json")
    assert rc == 0, out
    assert host.sh_rc("test -e /etc/become-added")[0] != 0 and "changed" not in host.sh("cat /etc/motd")
    assert PASSWORD not in out
    assert PASSWORD not in host.sh("journalctl --no-pager -q 2>/dev/null | tail -n 300; ps -eo args")


@pytest.mark.sandbox
def test_wrong_password_is_one_line_exit_13_host_untouched(host: Sandbox, tmp_path: Path, capsys) -> None:
    before = host.sh(STATE_OF_HOST)
    for argv in (["snapshot", host.name], ["scan", host.name]):
        rc, out = cli(capsys, *argv, "-i", _inventory(tmp_path, host, ansible_become_password="wrong one"))
        assert rc == ExitCode.SUDO, out
        said = [ln for ln in out.splitlines() if "error" in ln or "FAIL" in ln]  # not the progress lines
        assert said and all("the become password was refused (sudo for 'deploy')" in ln for ln in said), out
        assert "wrong one" not in out and "Traceback" not in out
    assert host.sh(STATE_OF_HOST) == before


@pytest.mark.sandbox
def test_no_password_given_says_how_to_give_one(host: Sandbox, tmp_path: Path, capsys) -> None:
    rc, out = cli(capsys, "snapshot", host.name, "-i", _inventory(tmp_path, host))
    assert rc == ExitCode.SUDO, out
    assert "-K" in out and "ansible_become_password" in out


@pytest.mark.sandbox
def test_nopasswd_sudo_still_works_with_a_password_set(host_a: Sandbox, tmp_path: Path, capsys) -> None:
    """deploy has NOPASSWD on host_a: sudo never reads the line, so it is not sent (not even a wrong one)."""
    for password in (PASSWORD, "not deploy's password"):
        inv = _inventory(tmp_path, host_a, ansible_become_password=password)
        rc, out = cli(capsys, "ping", "-i", inv)
        assert rc == 0 and "root via sudo -n" in out, out
        rc, out = cli(capsys, "snapshot", host_a.name, "-i", inv)
        assert rc == 0, out


@pytest.mark.sandbox
def test_nopasswd_for_some_commands_only_never_feeds_them_the_password(host: Sandbox, tmp_path: Path) -> None:
    """sudo asks for `true` but not for `cat`: commands run under /bin/sh (as Ansible's become), so sudo reads the
    password line for every one of them and `cat` sees only its own stdin."""
    host.sh("echo 'deploy ALL=(ALL) NOPASSWD: /usr/bin/cat' > /etc/sudoers.d/deploy-cat && "
            "chmod 0440 /etc/sudoers.d/deploy-cat")
    try:
        inv = _inventory(tmp_path, host, ansible_become_password=PASSWORD)
        with resolve_hosts([inv], host.name)[0].connect() as t:
            res = t.run(["cat"], sudo=True, stdin=b"payload\n").check()
            assert (res.stdout, t.root_via) == (b"payload\n", "sudo (password)")
            assert t.run(["id", "-u"], sudo=True).check().text == "0\n"
    finally:
        host.sh("rm -f /etc/sudoers.d/deploy-cat")


@pytest.mark.sandbox
def test_su_with_roots_password(host: Sandbox, tmp_path: Path, capsys) -> None:
    inv = _inventory(tmp_path, host, ansible_become_method="su", ansible_become_password=ROOT_PASSWORD)
    rc, out = cli(capsys, "ping", "-i", inv)
    assert rc == 0 and "root via su" in out, out
    rc, out = cli(capsys, "snapshot", host.name, "-i", inv)  # streams bytes both ways after the password line
    assert rc == 0, out
    rc, out = cli(capsys, "snapshot", host.name, "-i", _inventory(
        tmp_path, host, ansible_become_method="su", ansible_become_password=PASSWORD))
    assert rc == ExitCode.SUDO and "password was refused (su to root)" in out, out


@pytest.mark.sandbox
def test_run_arms_and_disarms_the_switch_through_the_password(host: Sandbox, tmp_path: Path, capsys) -> None:
    """Apply (ansible-runner) reads the same inventory; the switch is armed and disarmed through sudo -S."""
    pb = tmp_path / "good.yml"
    pb.write_text("- hosts: all\n  gather_facts: false\n  become: true\n  tasks:\n    - name: write\n"
                  "      ansible.builtin.copy: {dest: /etc/become-run.conf, content: \"ok\\n\", mode: \"0644\"}\n")
    inv = _inventory(tmp_path, host, ansible_become_password=PASSWORD)
    try:
        rc, out = cli(capsys, "run", str(pb), "-i", inv, "--yes", "--settle", "1", "--deadman-deadline", "60")
        assert rc == 0, out
        assert host.sh("cat /etc/become-run.conf") == "ok\n"
        rec = RunStore(tmp_path / "state" / "runs.sqlite").get("last")
        assert rec.sections["snapshots"][host.name]["deadman"]["outcome"] == "disarmed"
        assert "safeapply-deadman" not in host.sh("systemctl list-timers --all --no-pager")
        assert PASSWORD not in json.dumps(rec.to_dict())
    finally:
        host.sh("rm -f /etc/become-run.conf")
    leftovers = [p for p in (tmp_path / "state").rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]
    assert leftovers == []


@pytest.mark.sandbox
def test_python_interpreter_is_used_and_a_bogus_one_named(host: Sandbox, tmp_path: Path, capsys) -> None:
    host.sh("ln -sf /usr/bin/python3 /usr/local/bin/py3")
    inv = _inventory(tmp_path, host, ansible_become_password=PASSWORD,
                     ansible_python_interpreter="/usr/local/bin/py3")
    rc, out = cli(capsys, "snapshot", host.name, "-i", inv)
    assert rc == 0, out
    # the snapshot program ran on that interpreter: the self-restore launcher it wrote names it
    assert host.sh("head -n 1 /var/lib/safeapply/bin/safeapply-restore.py").strip() == "#!/usr/local/bin/py3"
    before = host.sh(STATE_OF_HOST)
    rc, out = cli(capsys, "snapshot", host.name, "-i", _inventory(
        tmp_path, host, ansible_become_password=PASSWORD, ansible_python_interpreter="/opt/nowhere/python3"))
    assert rc == ExitCode.NO_PYTHON, out
    assert "ansible_python_interpreter" in out and "/opt/nowhere/python3" in out
    assert host.sh(STATE_OF_HOST) == before
    rc, out = cli(capsys, "ping", "-i", _inventory(tmp_path, host, ansible_become_password=PASSWORD,
                                                   ansible_python_interpreter="auto_silent"))
    assert rc == 0, out


# ---- pure: what goes where -------------------------------------------------------------------------------------

def test_password_goes_to_stdin_never_argv_or_repr() -> None:
    b = Become.from_vars({"ansible_become_password": "pw-123", "ansible_become_user": "postgres"})
    argv = b.command(["python3", "-c", "x"], True)
    assert "pw-123" not in " ".join(argv) and "pw-123" not in repr(b)
    assert argv[:1] == ("sudo",) and argv[argv.index("-u"):argv.index("-u") + 2] == ("-u", "root")
    assert b.stdin(b"data", True) == b"pw-123\ndata" and b.stdin(None, False) is None
    stream: Any = b.stdin(io.BytesIO(b"x" * 3_000_000), True)
    assert stream.read() == b"pw-123\n" + b"x" * 3_000_000


def test_ansible_decides_which_variable_wins() -> None:
    """The sudo plugin's own order: ansible_sudo_pass is read last, so it wins (as in ansible-playbook)."""
    b = Become.from_vars({"ansible_become_pass": "a", "ansible_sudo_pass": "b"})
    assert b.password == "b"
    su = Become.from_vars({"ansible_become_method": "su", "ansible_su_pass": "c", "ansible_become_flags": "-l"})
    assert (su.method, su.password, su.command(["id"], True)) == ("su", "c", ("su", "-l", "-c", "id", "root"))


def test_root_work_refuses_what_cannot_give_root() -> None:
    def never(argv: Any, stdin: Any) -> tuple[int, bytes, bytes]:
        raise AssertionError(f"nothing may run: {argv}")

    su_other = Become.from_vars({"ansible_become_method": "su", "ansible_become_user": "postgres",
                                 "ansible_become_password": "pw"})
    with pytest.raises(SudoError, match="needs root, but su would switch to 'postgres'"):
        su_other.probe(never, "web1", "deploy")
    with pytest.raises(UsageError, match="become method 'doas' is not supported") as e:
        Become.from_vars({"ansible_become_method": "doas"}).probe(never, "web1", "deploy")
    assert e.value.exit_code == ExitCode.USAGE
    assert Become.from_vars({"ansible_become_method": "ansible.builtin.su"}).method == "su"
    sudo_other = Become.from_vars({"ansible_become_user": "postgres"})
    assert sudo_other.command(["id"], False) == ("sudo", "-H", "-n", "-u", "root", "--", "id")


def test_python_is_discovered_beyond_python3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No `python3` on the PATH, but a `python3.11`: found (before /usr/bin/python3), in the same round trip."""
    import shutil
    import sys

    from safeapply.transport.local import LocalTransport

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sh").symlink_to(shutil.which("sh") or "/bin/sh")
    monkeypatch.setenv("PATH", str(bindir))
    t = LocalTransport("box")
    (bindir / "python3.11").symlink_to(sys.executable)
    assert t.python("import sys; print(sys.executable)").text.strip() == str(bindir / "python3.11")


def test_an_su_that_wants_a_terminal_is_told_apart_from_a_wrong_password() -> None:
    su = Become.from_vars({"ansible_become_method": "su", "ansible_become_password": "pw"})
    with pytest.raises(SudoError, match="only from a terminal") as e:
        su.probe(lambda argv, stdin: (1, b"", b"su: must be run from a terminal\n"), "web1", "deploy")
    assert e.value.exit_code == ExitCode.SUDO
    with pytest.raises(SudoError, match="password was refused"):
        su.probe(lambda argv, stdin: (1, b"", b"Password: su: Authentication failure\n"), "web1", "deploy")
