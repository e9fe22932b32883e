"""ProxyJump as OpenSSH does it, through paramiko `direct-tcpip` channels: each hop resolved with `ssh -G`
(its own user, key, known_hosts, ProxyCommand), its host key verified; a bad bastion is one line naming it.

The sandbox `a` is the bastion; the target is `127.0.0.1:22` as seen from inside it, i.e. the sandbox again,
reached only through the channel (connected straight from the controller, 127.0.0.1:22 is this machine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from safeapply import sandbox as sb
from safeapply.cli import main
from safeapply.errors import ExitCode
from safeapply.inventory import resolve_hosts
from safeapply.sandbox.paths import controller_key

pytestmark = pytest.mark.sandbox


@pytest.fixture
def project(host_a: Any, tmp_path: Path) -> Path:
    """An ssh config with a bastion (the sandbox, via its ProxyCommand run through the shell) and hosts behind
    it, and an inventory that names only the hosts; everything else comes from the ssh config."""
    hostkey = host_a.paths.known_hosts.read_text().split()
    (tmp_path / "kh_inner").write_text(f"127.0.0.1 {hostkey[1]} {hostkey[2]}\n")
    (tmp_path / "kh_empty").write_text("")
    login = (f"  User root\n  IdentityFile {controller_key()}\n  IdentitiesOnly yes\n  StrictHostKeyChecking yes\n"
             "  GlobalKnownHostsFile /dev/null\n")
    bastion = f"  HostName {host_a.paths.machine}\n  ProxyCommand {host_a.paths.proxy_command} 2>/dev/null\n{login}"
    (tmp_path / "ssh_config").write_text(
        f"Host bastion\n{bastion}  UserKnownHostsFile {host_a.paths.known_hosts}\n"
        f"Host bastion-newkey\n{bastion}  UserKnownHostsFile {tmp_path}/kh_empty\n"
        f"Host bastion-down\n  HostName 127.0.0.1\n  Port 1\n{login}"
        f"Host inner 127.0.0.1\n  HostName 127.0.0.1\n  ProxyJump bastion\n  UserKnownHostsFile {tmp_path}/kh_inner\n"
        f"{login}"
        f"Host via-newkey\n  HostName 127.0.0.1\n  ProxyJump bastion-newkey\n{login}"
        f"Host via-down\n  HostName 127.0.0.1\n  ProxyJump bastion-down\n{login}"
        f"Host closed-behind\n  HostName 127.0.0.1\n  Port 1\n  ProxyJump bastion\n{login}"
    )
    args = f"ansible_ssh_common_args='-F {tmp_path}/ssh_config'"
    (tmp_path / "inv.ini").write_text(
        f"t1 ansible_host=inner {args}\n"
        f"t2 ansible_host=127.0.0.1 ansible_ssh_common_args='-F {tmp_path}/ssh_config -J bastion,inner'\n"
        f"t3 ansible_host=via-newkey {args}\nt4 ansible_host=via-down {args}\nt5 ansible_host=closed-behind {args}\n"
    )
    return tmp_path


def _ping(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    rc = main(["ping", *args])
    cap = capsys.readouterr()
    return rc, cap.err if rc else cap.out


@pytest.mark.parametrize("host", ["t1", "t2"])
def test_host_behind_bastion_is_reached_through_it(project: Path, host: str, capsys) -> None:
    """t1: ProxyJump from the ssh config; t2: two hops (`-J bastion,inner` in ansible_ssh_common_args)."""
    h = resolve_hosts([str(project / "inv.ini")], host)[0]
    with h.connect() as t:
        assert t.run(["hostname"]).check().text.strip() == "a"  # the sandbox, not this machine's 127.0.0.1
    rc, out = _ping(capsys, "-i", str(project / "inv.ini"), host)
    assert rc == 0, out


def test_unknown_host_key_of_the_bastion(project: Path, capsys) -> None:
    rc, out = _ping(capsys, "-i", str(project / "inv.ini"), "t3")
    assert rc == ExitCode.HOST_KEY, out
    assert "bastion-newkey (jump host of t3): unknown SSH host key" in out
    assert len(out.strip().splitlines()) == 1
    assert (project / "kh_empty").read_text() == ""


def test_unreachable_bastion(project: Path, capsys) -> None:
    rc, out = _ping(capsys, "-i", str(project / "inv.ini"), "t4")
    assert rc == ExitCode.UNREACHABLE, out
    assert "bastion-down (jump host of t4)" in out and "cannot connect" in out
    assert len(out.strip().splitlines()) == 1


def test_target_unreachable_from_the_bastion(project: Path, capsys) -> None:
    rc, out = _ping(capsys, "-i", str(project / "inv.ini"), "t5")
    assert rc == ExitCode.UNREACHABLE, out
    assert "t5 (127.0.0.1:1): cannot connect through jump host bastion" in out


def test_host_on_a_private_network_only_through_its_bastion(sandbox_factory: Any, capsys) -> None:
    """`sandbox up --network` + `--via`: the target's address exists only on the bastion's private network; its
    written inventory says `-o ProxyJump=BASTION` (with -F for the bastion's entry). The login arrives from the
    bastion's address, over the network interface."""
    bastion = sandbox_factory("jb", sb.SandboxOptions(sb.Layout(network="jn")))
    behind = sandbox_factory("jt", sb.SandboxOptions(sb.Layout(via="jb")))
    h = resolve_hosts([str(behind.inventory)], behind.name)[0]
    with h.connect() as t:
        client, _, server, _ = t.run(["sh", "-c", "echo $SSH_CONNECTION"]).check().text.split()
    assert client == sb.Layout.load(bastion.paths).address
    assert server == sb.Layout.load(behind.paths).address
    rc, out = _ping(capsys, "-i", str(behind.inventory))
    assert rc == 0, out
