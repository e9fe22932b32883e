"""An ordinary Ansible project used from its root against one real sandbox, with no safeapply-specific flags
(issue 10 items 1, 2, 5): ansible.cfg gives the inventory, remote_user, private_key_file, roles_path and the
vault password file; the inventory's group_vars are vaulted; the playbook in playbooks/ uses a role in roles/.
ping, scan, plan, snapshot, run (applied through ansible-runner with that ansible.cfg: no -i), rollback; the
same project with plain ansible-playbook; a wrong vault password changes nothing; no secret is left behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from ansible_project import BIN, EXTRA_VALUE, PLAY_VALUE, VAULT_PASSWORD, VAULT_VALUE, make_project, run
from conftest import Sandbox

from safeapply.errors import ExitCode

pytestmark = pytest.mark.sandbox

EXTRA_TASK = """  tasks:
    - name: Vaulted extra vars reach the host
      ansible.builtin.copy:
        dest: /root/safeapply-ctx-extra
        content: "{{ extra_token }}\\n"
        mode: "0600"
      no_log: true
      when: extra_token is defined
"""
SECRETS = (VAULT_PASSWORD, VAULT_VALUE, EXTRA_VALUE, PLAY_VALUE)


@pytest.fixture(scope="module")
def host(sandbox_factory: Callable[[str], Sandbox]) -> Sandbox:
    return sandbox_factory("ctx1")


@pytest.fixture(scope="module")
def where(host: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The project (its connection settings split between the inventory and ansible.cfg, as users keep them),
    and the environment its commands run with (their own state dir and temp dir, searched for secrets)."""
    base = tmp_path_factory.mktemp("ctxproj")
    hv = dict(yaml.safe_load(host.inventory.read_text())["all"]["hosts"][host.name])
    cfg = {"remote_user": hv.pop("ansible_user")}
    if "ansible_ssh_private_key_file" in hv:
        cfg["private_key_file"] = hv.pop("ansible_ssh_private_key_file")
    root = make_project(base / "proj", host.name, hv, cfg, tasks=EXTRA_TASK)
    (base / "tmp").mkdir()
    (base / "state").mkdir(mode=0o700)
    env = {"SAFEAPPLY_STATE_DIR": str(base / "state"), "TMPDIR": str(base / "tmp"), "COLUMNS": "200"}
    return root, env


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_read_only_commands_from_the_projects_root(where: tuple[Path, dict[str, str]], host: Sandbox) -> None:
    root, env = where
    assert "root via" in _ok(run(root, "safeapply", "ping", env=env))
    assert host.name in json.loads(_ok(run(root, "safeapply", "scan", "--json", env=env)))["hosts"]
    plan = json.loads(_ok(run(root, "safeapply", "plan", "playbooks/site.yml", "-e", "@vars/extra.yml", "--json",
                              env=env)))
    paths = [f["path"] for f in plan["hosts"][host.name]["intent"]["files"]]
    assert "/root/safeapply-ctx-extra" in paths and "/root/safeapply-ctx-marker" in paths
    _ok(run(root, "safeapply", "snapshot", "all", env=env))


def test_run_applies_with_the_projects_ansible_cfg(where: tuple[Path, dict[str, str]], host: Sandbox) -> None:
    """No -i: ansible-runner's ansible-playbook reads the same ansible.cfg (inventory, remote_user, key, roles,
    vault) from the same directory — on main it ran in playbooks/ and reached no host."""
    root, env = where
    out = _ok(run(root, "safeapply", "run", "playbooks/site.yml", "-e", "@vars/extra.yml", "--yes", "--json",
                  "--settle", "1", env=env))
    rec = json.loads(out)
    assert rec["status"] == "applied" and rec["apply"]["hosts"][host.name]["changed"] == 2
    assert host.sh("cat /root/safeapply-ctx-marker /root/safeapply-ctx-extra").split() == [
        VAULT_VALUE, PLAY_VALUE, EXTRA_VALUE]
    _no_secret_in(out, Path(env["SAFEAPPLY_STATE_DIR"]), Path(env["TMPDIR"]))


def test_apply_with_no_i_reaches_the_host_without_any_vault(where: tuple[Path, dict[str, str]], host: Sandbox) -> None:
    """The same layout with nothing vaulted and the login in the inventory: the cwd/ansible.cfg fix alone (on main:
    ansible-playbook ran in playbooks/, found no ansible.cfg, so no inventory and no roles)."""
    root, env = where
    plain = root.parent / "plain"
    shutil.copytree(root, plain)
    (plain / "inventories/home/group_vars/all/vault.yml").unlink()
    (plain / "inventories/home/group_vars/all/vars.yml").write_text("token: plain-token\n")
    (plain / "playbooks/vars/play.yml").write_text("play_token: plain-play\n")
    (plain / "ansible.cfg").write_text("[defaults]\ninventory = inventories/home/hosts.yml\nroles_path = roles\n")
    hv = yaml.safe_load(host.inventory.read_text())["all"]["hosts"]
    (plain / "inventories/home/hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"web": {"hosts": hv}}}}))
    # ansible-playbook's own connection options reach its apply as well (it refuses one it does not know: exit 2)
    _ok(run(plain, "safeapply", "run", "playbooks/site.yml", "--yes", "--settle", "1", "-u", "root", "-f", "2",
            "-T", "30", "--ssh-extra-args", "-o ServerAliveInterval=5", env=env))
    assert host.sh("cat /root/safeapply-ctx-marker").split() == ["plain-token", "plain-play"]


def test_rollback_of_that_run(where: tuple[Path, dict[str, str]]) -> None:
    root, env = where
    _ok(run(root, "safeapply", "rollback", "last", "--yes", env=env))


def test_a_wrong_vault_password_changes_nothing(where: tuple[Path, dict[str, str]], host: Sandbox) -> None:
    root, env = where
    before = host.sh("find /etc /root -printf '%p %s %T@\\n' | sort")
    good = (root / ".vault-pass").read_text()
    (root / ".vault-pass").write_text("not the password\n")
    try:
        proc = run(root, "safeapply", "run", "playbooks/site.yml", "--yes", "--json", env=env)
    finally:
        (root / ".vault-pass").write_text(good)
    assert proc.returncode == ExitCode.VAULT, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("== ")]  # stage lines: --json's progress
    assert len(lines) == 1 and lines[0].startswith("safeapply: error: vault: "), proc.stderr
    assert host.sh("find /etc /root -printf '%p %s %T@\\n' | sort") == before


def test_ask_vault_pass_reaches_the_apply(where: tuple[Path, dict[str, str]], host: Sandbox) -> None:
    """-J at a real pseudo-terminal: the typed password decrypts for safeapply and for the apply's ansible-playbook
    (a 0600 file in the runner's private dir, gone after); it is never echoed, nor left in TMPDIR."""
    pexpect = pytest.importorskip("pexpect")
    root, env = where
    typed = root.parent / "typed"
    shutil.copytree(root, typed)
    (typed / ".vault-pass").unlink()
    cfg = typed / "ansible.cfg"
    cfg.write_text("".join(ln for ln in cfg.read_text().splitlines(keepends=True) if "vault" not in ln))
    host.sh("rm -f /root/safeapply-ctx-marker")
    full = {**{k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"}, **env}
    child = pexpect.spawn(str(BIN / "safeapply"), ["run", "playbooks/site.yml", "-J", "--yes", "--settle", "1"],
                          cwd=str(typed), env=full, timeout=600, encoding="utf-8")
    child.expect("Vault password: ")
    child.sendline(VAULT_PASSWORD)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert host.sh("cat /root/safeapply-ctx-marker").split() == [VAULT_VALUE, PLAY_VALUE]
    _no_secret_in(child.before or "", Path(env["SAFEAPPLY_STATE_DIR"]), Path(env["TMPDIR"]))


def test_the_fixture_is_a_real_ansible_project(where: tuple[Path, dict[str, str]]) -> None:
    root, env = where
    proc = run(root, "ansible-playbook", "playbooks/site.yml", "--check", env=env)
    assert proc.returncode == 0, proc.stdout[-3000:]


def _no_secret_in(out: str, *dirs: Path) -> None:
    """Neither the vault password nor a vaulted value in --json output, the run record, the run's log, the
    runner's private dir (deleted after the run: only TMPDIR's leftovers are searched) or any other file."""
    for secret in SECRETS:
        assert secret not in out
    for d in dirs:
        for dirpath, _dirs, files in os.walk(d):
            for name in files:
                data = (Path(dirpath) / name).read_bytes()
                for secret in SECRETS:
                    assert secret.encode() not in data, (Path(dirpath) / name, secret)
