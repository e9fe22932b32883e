"""An ordinary Ansible project, unchanged (issue 10): tests/fixtures/homelab-project run from its own root with
no safeapply-specific flag, against hosts shaped like a homelab's — a `deploy` login (root login off) whose sudo
needs the password kept in the project's vault, the key only in an ssh-agent, addresses on a private network,
and one host reachable only through a bastion. Ansible itself runs the same project (the fixture is real)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Sandbox

from safeapply import sandbox as sb
from safeapply.records import RunStore
from safeapply.sandbox.host import Layout, SandboxOptions, ensure_controller_key
from safeapply.sandbox.network import proxy_command

pytestmark = pytest.mark.sandbox

FIXTURE = Path(__file__).parent / "fixtures" / "homelab-project"
BIN = Path(sys.executable).parent
SUDO_PW = "deploy-sudo-pw"  # what the fixture's vault holds
VAULT_PW = "homelab-vault-pw"
NET = "home"
# what a host looks like, as far as this test goes: its /etc (paths, modes, owners, content)
ETC_DIGEST = ("cd /etc && find . -printf '%p %m %u %g %y %l\\n' | sort | sha256sum && "
              "find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum")


class Homelab:
    def __init__(self, root: Path, env: dict[str, str], hosts: dict[str, Sandbox]) -> None:
        self.root, self.env, self.hosts = root, env, hosts

    def safeapply(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return self.safeapply_in(self.root, *argv)

    def safeapply_in(self, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "safeapply"), *argv], cwd=cwd, env=self.env, capture_output=True,
                              text=True, check=False, timeout=900)

    def ansible_playbook(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "ansible-playbook"), *argv], cwd=self.root, env=self.env,
                              capture_output=True, text=True, check=False, timeout=900)

    def root_sh(self, host: str, cmd: str) -> str:
        """`cmd` as root on `host`, the way its admin would: ssh as deploy, sudo with the password."""
        return self.hosts[host].sh(f"sudo -S -p '' sh -c {_quote(cmd)}", user="deploy",
                                   stdin=f"{SUDO_PW}\n".encode())

    def etc(self, host: str) -> str:
        return self.root_sh(host, ETC_DIGEST)


def _quote(cmd: str) -> str:
    return "'" + cmd.replace("'", "'\\''") + "'"


def _ssh_config(hosts: dict[str, Sandbox], known_hosts: Path) -> str:
    """What a homelab's ssh_config says: addresses, the bastion hop. Reaching the private network from this
    machine goes through a ProxyCommand into the network's namespace (the sandboxes' stand-in for a LAN)."""
    out = []
    for name, box in hosts.items():
        lay = Layout.load(box.paths)
        assert lay.address is not None
        route = ("  ProxyJump bastion\n" if name == "app1"
                 else f"  ProxyCommand {proxy_command(NET, lay.address)}\n")
        user = "  User deploy\n" if name == "bastion" else ""  # a jump host's login is ssh's, not Ansible's
        out.append(f"Host {name}\n  HostName {lay.address}\n{route}{user}")
    out.append(f"Host *\n  UserKnownHostsFile {known_hosts}\n  StrictHostKeyChecking yes\n  BatchMode yes\n"
               "  ConnectTimeout 10\n")
    return "".join(out)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An ssh-agent of this test's own holding the sandboxes' key: the only place the key is offered from."""
    sock = tmp_path_factory.mktemp("agent") / "sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.05"], check=True)
        subprocess.run(["ssh-add", str(ensure_controller_key())], env={**os.environ, "SSH_AUTH_SOCK": str(sock)},
                       check=True, capture_output=True)
        yield str(sock)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def homelab(sandbox_factory: Callable[..., Sandbox], agent: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homelab]:
    homelike = Layout(login_user="deploy", root_login=False, sudo_password=True, network=NET, key_in_inventory=False)
    opts = SandboxOptions(layout=homelike, sudo_password=SUDO_PW)
    old_sock = os.environ.get("SSH_AUTH_SOCK")
    os.environ["SSH_AUTH_SOCK"] = agent  # the harness's own ssh (Sandbox.sh) uses the agent too
    hosts = {"bastion": sandbox_factory("hl-bastion", opts), "web1": sandbox_factory("hl-web1", opts)}
    hosts["app1"] = sandbox_factory("hl-app1", SandboxOptions(
        layout=Layout(login_user="deploy", root_login=False, sudo_password=True, via="hl-bastion",
                      key_in_inventory=False), sudo_password=SUDO_PW))
    tmp = tmp_path_factory.mktemp("homelab")
    home, root = tmp / "home", tmp / "project"
    home.mkdir()
    shutil.copytree(FIXTURE, root)
    known = home / "known_hosts"
    known.write_text("".join(box.paths.known_hosts.read_text() for box in hosts.values()))
    (root / "ssh_config").write_text(_ssh_config(hosts, known))
    (home / ".homelab-vault-pass").write_text(VAULT_PW + "\n")
    (home / ".homelab-vault-pass").chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "SAFEAPPLY_"))}
    env.update(HOME=str(home), SSH_AUTH_SOCK=agent, SAFEAPPLY_STATE_DIR=str(tmp / "state"),
               SAFEAPPLY_SANDBOX_PREFIX=os.environ["SAFEAPPLY_SANDBOX_PREFIX"])
    lab = Homelab(root, env, hosts)
    # app1 answers SSH only from the bastion: a direct path would be "another machine" to anyone who took it
    bastion_ip = Layout.load(hosts["bastion"].paths).address
    lab.root_sh("app1", "nft add table inet gate && nft add chain inet gate input "
                "'{ type filter hook input priority -10; policy accept; }' && "
                f"nft add rule inet gate input iifname != lo tcp dport 22 ip saddr != {bastion_ip} drop")
    try:
        yield lab
    finally:
        if old_sock is None:
            os.environ.pop("SSH_AUTH_SOCK", None)
        else:
            os.environ["SSH_AUTH_SOCK"] = old_sock


def _ok(proc: subprocess.CompletedProcess[str], rc: int = 0) -> str:
    assert proc.returncode == rc, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_app1_is_reachable_only_through_the_bastion(homelab: Homelab) -> None:
    direct = Layout.load(homelab.hosts["app1"].paths).address
    probe = subprocess.run(["ip", "netns", "exec", sb.network.netns(NET), "nc", "-z", "-w", "3", str(direct), "22"],
                           capture_output=True, check=False)
    assert probe.returncode != 0
    assert homelab.root_sh("app1", "echo through-the-bastion").strip() == "through-the-bastion"


def test_reads_without_any_safeapply_flag(homelab: Homelab) -> None:
    for argv in (["ping"], ["scan", "homelab"], ["snapshot", "homelab"], ["plan", "playbooks/site.yml"]):
        out = _ok(homelab.safeapply(*argv))
        assert "app1" in out and "web1" in out, (argv, out)


def test_failing_play_is_rolled_back_with_etc_identical(homelab: Homelab) -> None:
    before = {h: homelab.etc(h) for h in ("web1", "app1")}
    proc = homelab.safeapply("run", "playbooks/broken.yml", "--yes")
    _ok(proc, 20)
    assert "Proxy config check" in proc.stdout + proc.stderr  # which task failed, and why, is shown
    assert {h: homelab.etc(h) for h in ("web1", "app1")} == before


def test_passing_play_is_applied_and_verified_then_rolled_back_by_id(homelab: Homelab) -> None:
    _ok(homelab.safeapply("run", "playbooks/site.yml", "--yes"))
    for host in ("web1", "app1"):
        assert "8080" in homelab.root_sh(host, "ss -Hltn 'sport = :8080'")
        assert "managed by Ansible" in homelab.root_sh(host, "cat /etc/motd")
    run_id = RunStore(Path(homelab.env["SAFEAPPLY_STATE_DIR"]) / "runs.sqlite").get("last").id
    # from another directory, whose ansible.cfg logs in as root (refused by these hosts), reads no vault (the
    # sudo password) and names another inventory: the rollback reads the run's ansible.cfg, in the run's directory
    decoy = homelab.root.parent / "elsewhere"
    decoy.mkdir()
    (decoy / "ansible.cfg").write_text("[defaults]\ninventory = hosts.yml\nremote_user = root\n")
    (decoy / "hosts.yml").write_text("all:\n  hosts:\n    web1:\n      ansible_host: 192.0.2.1\n")
    cfg = homelab.root / "ansible.cfg"
    kept = cfg.read_text()
    cfg.write_text(kept + "# edited after the run\n")
    refused = homelab.safeapply_in(decoy, "rollback", run_id, "--yes")
    cfg.write_text(kept)
    _ok(refused, 2)
    assert f"{cfg}, the ansible.cfg run {run_id} read, changed since the run" in refused.stderr
    _ok(homelab.safeapply_in(decoy, "rollback", run_id, "--yes"))
    for host in ("web1", "app1"):
        assert homelab.root_sh(host, "test -e /etc/systemd/system/whoami.service || echo gone").strip() == "gone"


def test_lan_firewall_lockout_is_restored_by_the_switch(homelab: Homelab) -> None:
    """nft drops tcp/22 except on loopback: only a connection over the network interface finds the door shut."""
    before = homelab.etc("web1")
    proc = homelab.safeapply("run", "playbooks/firewall.yml", "--limit", "web1", "--yes", "--deadman-deadline", "20")
    _ok(proc, 20)
    assert homelab.etc("web1") == before
    assert "dport 22" not in homelab.root_sh("web1", "nft list ruleset")


def test_ansible_playbook_runs_the_same_project(homelab: Homelab) -> None:
    out = _ok(homelab.ansible_playbook("playbooks/site.yml"))
    assert "failed=0" in out and "unreachable=0" in out
