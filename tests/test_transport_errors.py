"""Every way a connection can go wrong ends in one readable line and the documented exit code."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from safeapply.cli import main
from safeapply.errors import ExitCode

pytestmark = pytest.mark.sandbox


def _inventory(tmp_path: Path, host: Any, **changes: str) -> Path:
    data = yaml.safe_load(host.inventory.read_text())
    hv = data["all"]["hosts"][host.name]
    hv.update(changes)
    path = tmp_path / "inv.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def _ping(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    rc = main(["ping", *args])
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


def test_ping_ok_as_root_and_as_sudo_user(host_a, tmp_path, capsys) -> None:
    rc, out = _ping(capsys, "-i", str(host_a.inventory), host_a.name)
    assert rc == 0, out
    assert "root via login" in out
    rc, out = _ping(capsys, "-i", str(_inventory(tmp_path, host_a, ansible_user="deploy")))
    assert rc == 0, out
    assert "root via sudo -n" in out


def test_unknown_host(host_a, capsys) -> None:
    rc, out = _ping(capsys, "-i", str(host_a.inventory), "no-such-host")
    assert rc == ExitCode.NO_HOSTS
    assert "no host matched 'no-such-host'" in out
    assert "Traceback" not in out


def test_missing_inventory(capsys, tmp_path) -> None:
    rc, out = _ping(capsys, "-i", str(tmp_path / "nope.yml"))
    assert rc == ExitCode.USAGE
    assert "does not exist" in out


def test_unreachable(host_a, tmp_path, capsys) -> None:
    inv = _inventory(tmp_path, host_a, ansible_port="2")  # nothing listens on :2 inside the sandbox
    rc, out = _ping(capsys, "-i", str(inv))
    assert rc == ExitCode.UNREACHABLE, out
    assert host_a.name in out


def test_wrong_key(host_a, tmp_path, capsys) -> None:
    key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    rc, out = _ping(capsys, "-i", str(_inventory(tmp_path, host_a, ansible_ssh_private_key_file=str(key))))
    assert rc == ExitCode.AUTH, out
    assert "authentication failed" in out
    assert str(key) in out  # names the key file, never its content
    assert "PRIVATE KEY" not in out


def test_unknown_host_key_rejected_unless_accept_new(host_a, tmp_path, capsys) -> None:
    known = tmp_path / "known_hosts"
    args = f'-o ProxyCommand="ip netns exec {host_a.paths.netns} nc 127.0.0.1 %p" -o UserKnownHostsFile={known}'
    inv = _inventory(tmp_path, host_a, ansible_ssh_common_args=args)
    rc, out = _ping(capsys, "-i", str(inv))
    assert rc == ExitCode.HOST_KEY, out
    assert "unknown SSH host key" in out and "--accept-new-host-keys" in out
    assert not known.exists()
    rc, out = _ping(capsys, "-i", str(inv), "--accept-new-host-keys")
    assert rc == 0, out
    # recorded hashed (as HashKnownHosts yes writes it), 0600, and OpenSSH finds it
    assert known.read_text().startswith("|1|") and host_a.paths.machine not in known.read_text()
    assert known.read_text().split()[1:] == host_a.paths.known_hosts.read_text().split()[1:]
    assert known.stat().st_mode & 0o777 == 0o600
    found = subprocess.run(["ssh-keygen", "-F", host_a.paths.machine, "-f", str(known)], capture_output=True)
    assert found.returncode == 0, found
    rc, out = _ping(capsys, "-i", str(inv))  # now known
    assert rc == 0, out


def test_changed_host_key_is_rejected_even_with_accept_new(host_a, host_b, tmp_path, capsys) -> None:
    known = tmp_path / "known_hosts"
    b_key = host_b.paths.known_hosts.read_text().split(maxsplit=1)[1]
    known.write_text(f"{host_a.paths.machine} {b_key}")
    args = f'-o ProxyCommand="ip netns exec {host_a.paths.netns} nc 127.0.0.1 %p" -o UserKnownHostsFile={known}'
    inv = _inventory(tmp_path, host_a, ansible_ssh_common_args=args)
    rc, out = _ping(capsys, "-i", str(inv), "--accept-new-host-keys")
    assert rc == ExitCode.HOST_KEY, out
    assert "CHANGED" in out and f"ssh-keygen -R '{host_a.paths.machine}' -f {known}" in out


def test_no_sudo(host_a, tmp_path, capsys) -> None:
    rc, out = _ping(capsys, "-i", str(_inventory(tmp_path, host_a, ansible_user="nosudo")))
    assert rc == ExitCode.SUDO, out
    assert "'nosudo' cannot run sudo without a password" in out


def test_no_python3(sandbox_factory, capsys) -> None:
    h = sandbox_factory("nopy")
    h.sh("mv /usr/bin/python3 /usr/bin/python3.moved")
    rc, out = _ping(capsys, "-i", str(h.inventory))
    assert rc == ExitCode.NO_PYTHON, out
    assert "no python3 on the target" in out


def test_proxy_command_from_ssh_config(host_a, tmp_path, capsys, monkeypatch) -> None:
    """~/.ssh/config is honoured: HostName/ProxyCommand/IdentityFile come from it (here via -F)."""
    cfg = tmp_path / "ssh_config"
    cfg.write_text(host_a.paths.ssh_config.read_text())
    inv = tmp_path / "inv.ini"
    inv.write_text(f"{host_a.name} ansible_ssh_common_args='-F {cfg}'\n")
    rc, out = _ping(capsys, "-i", str(inv))
    assert rc == 0, out
