"""Sandboxes that look like real homelab hosts (issue 10 item 6): several booted at once on a fresh prefix,
a login user whose sudo needs a password with root login off, a shared private network, a host behind a
bastion. Few boots: the race test's two, then one network of three."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Sandbox, quote

from safeapply import sandbox as sb
from safeapply.cli import main

pytestmark = pytest.mark.sandbox


@pytest.fixture
def fresh_prefix_dir(sandbox_factory: Callable[[str], object], monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A state dir with no controller key yet (what a first `sandbox up` on a new prefix sees). It lies under this
    prefix's own dir, so a killed run's overlay mounts are still found by the session's leftovers check."""
    fresh = sb.paths.base_dir() / "fresh"
    shutil.rmtree(fresh, ignore_errors=True)
    monkeypatch.setenv("SAFEAPPLY_SANDBOX_DIR", str(fresh))
    yield fresh
    shutil.rmtree(fresh, ignore_errors=True)


def test_up_two_at_once_on_a_fresh_prefix(fresh_prefix_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = ["race1", "race2"]
    try:
        rc = main(["sandbox", "up", *names])
        err = capsys.readouterr().err
        assert rc == 0, err
        assert main(["sandbox", "list", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)["sandboxes"]
        assert {(s["name"], s["running"]) for s in listed} == {(n, True) for n in names}
        for n in names:
            ssh = sb.SandboxPaths(n).ssh_config
            assert subprocess.run(["ssh", "-F", str(ssh), n, "true"], check=False).returncode == 0
    finally:
        for n in names:
            sb.down(n, fast=True)
    assert not [x for x in sb.leftovers() if any(n in x for n in names)]


def test_a_failed_multi_up_names_the_failure_and_leaves_no_half(host_a: Sandbox,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "up", "a", "half"]) == 2  # `a` exists: a usage error; `half` boots, then goes
    err = capsys.readouterr().err
    assert "a: sandbox a already exists" in err and "half came up and was removed again" in err, err
    assert "half" not in sb.known_names()
    assert not [x for x in sb.leftovers() if "half" in x]
    assert sb.info(host_a.paths).running  # the one that was there is untouched


PASSWORD = "homelab sudo pw"


@pytest.fixture(scope="module")
def lan(sandbox_factory: Callable[..., Sandbox]) -> dict[str, Sandbox]:
    """A private network `lan`: a bastion and a peer the controller reaches on their eth0, and a host with a
    `deploy` login (sudo password, no root login) written as reachable only through the bastion."""
    on_lan = sb.SandboxOptions(sb.Layout(network="lan"))
    behind = sb.SandboxOptions(sb.Layout(login_user="deploy", root_login=False, via="bast"), PASSWORD)
    return {"bast": sandbox_factory("bast", on_lan), "peer": sandbox_factory("peer", on_lan),
            "behind": sandbox_factory("behind", behind)}


def _address(h: Sandbox) -> str:
    address = sb.Layout.load(h.paths).address
    assert address
    return address


def test_controller_reaches_sandboxes_on_their_network_interface(lan: dict[str, Sandbox]) -> None:
    for h in (lan["bast"], lan["peer"]):
        # SSH_CONNECTION = client ip, port, server ip, port: the login came in on eth0's address
        assert h.sh("echo $SSH_CONNECTION").split()[2] == _address(h)
        with h.transport() as t:  # safeapply's own transport, from the written inventory
            assert t.run(["hostname"]).text.strip() == h.name


def test_sandboxes_on_one_network_reach_each_other(lan: dict[str, Sandbox]) -> None:
    connect = f"import socket; socket.create_connection(({_address(lan['peer'])!r}, 22), timeout=30).close()"
    lan["bast"].sh(f"python3 -c {quote(connect)}")


def test_firewall_on_eth0_spares_loopback(lan: dict[str, Sandbox]) -> None:
    """What a lockout test needs: a rule on the network interface cuts the controller off, loopback still works."""
    peer = lan["peer"]
    peer.sh("nft add table inet lock && nft add chain inet lock in '{ type filter hook input priority 0; }' && "
            "nft add rule inet lock in iifname eth0 tcp dport 22 reject with tcp reset")
    try:
        assert peer.sh_rc("true")[0] == 255
        assert subprocess.run(["ip", "netns", "exec", peer.paths.netns, "nc", "-z", "127.0.0.1", "22"],
                              check=False).returncode == 0
    finally:
        peer.inside("nft delete table inet lock")
    assert peer.sh("true") == ""


def test_deploy_with_sudo_password_behind_the_bastion(lan: dict[str, Sandbox]) -> None:
    behind = lan["behind"]
    rc, out = behind.sh_rc("true", user="root")
    assert rc == 255 and "Permission denied" in out  # PermitRootLogin no
    assert behind.sh("id -un", user="deploy").strip() == "deploy"
    assert behind.sh("echo $SSH_CONNECTION", user="deploy").split()[0] == _address(lan["bast"])  # via the bastion
    rc, out = behind.sh_rc("sudo -n true", user="deploy")
    assert rc == 1 and "password is required" in out
    assert behind.sh("sudo -S -p '' id -u", user="deploy", stdin=f"{PASSWORD}\n".encode()).strip() == "0"
    assert PASSWORD not in behind.inventory.read_text() + behind.paths.options.read_text()
    assert behind.inside("id -un; ls /root/.ssh/authorized_keys").split()[0] == "root"  # root, without SSH


def test_written_inventories_work_with_ansible(lan: dict[str, Sandbox], tmp_path: Path) -> None:
    """The inventories as Ansible reads them: the peer's ProxyCommand, the bastion's ProxyJump with become."""
    (tmp_path / "become.yml").write_text(f"ansible_become_password: {PASSWORD}\n")
    ansible = Path(sys.executable).with_name("ansible")
    proc = subprocess.run([str(ansible), "-i", str(lan["peer"].inventory), "-i", str(lan["behind"].inventory),
                           "all", "-b", "-e", f"@{tmp_path / 'become.yml'}", "-m", "command", "-a", "id -u"],
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("rc=0 >>\n0") == 2, proc.stdout


def test_down_removes_the_network_with_its_last_sandbox(lan: dict[str, Sandbox]) -> None:
    ours = sb.network.netns("lan")
    sb.down("peer")
    assert ours in sb.network.ours()
    sb.down("behind")
    sb.down("bast")
    assert ours not in sb.network.ours()
    assert not [x for x in sb.leftovers() if any(n in x for n in ("bast", "peer", "behind", "net-lan"))]


@pytest.mark.parametrize(("argv", "says"), [
    (["--no-root-login", "x"], "--no-root-login needs --login-user"),
    (["--login-user", "deploy", "--sudo-password-file", "/nonexistent/pw", "x"], "cannot read the sudo password"),
    (["--via", "nosuch", "x"], "no running sandbox nosuch"),
    (["--network", "Bad_Net", "x"], "bad network name"),
    (["net-x"], "reserved"),
    (["x", "x"], "named twice"),
    (["--authorized-key", "/etc/hostname", "x"], "not an OpenSSH public key"),
])
def test_bad_up_options(sandbox_factory: object, argv: list[str], says: str,
                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "up", *argv]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1, err
    assert "x" not in sb.known_names()
