"""One Ansible context per invocation (issue 10 items 1, 2, 5), without sandboxes: an ordinary Ansible project
(ansible.cfg at its root, vaulted group_vars, roles/) used from its root with no safeapply-specific flags, the
vault flags and errors, and the command line's connection/become options folded into each host's variables
at Ansible's precedence. Every command runs as its own process from the project's root, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible_project import BIN, EXTRA_VALUE, VAULT_PASSWORD, VAULT_VALUE, encrypt, make_project, run

from safeapply.errors import ExitCode

LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj", "h1", LOCAL, {"remote_user": "cfguser", "timeout": "17"})


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_vaulted_group_vars_resolve_from_the_projects_ansible_cfg(project: Path) -> None:
    """ansible.cfg's inventory and vault_password_file, no flags: on main this exited 5 (internal error)."""
    proc = run(project, "safeapply", "ping", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "h1" in json.loads(proc.stdout)["hosts"]
    assert VAULT_VALUE not in proc.stdout + proc.stderr


@pytest.mark.parametrize("case", ["wrong", "missing"])
def test_a_wrong_or_missing_vault_password_is_exit_19_in_one_line(project: Path, case: str) -> None:
    if case == "wrong":
        (project / ".vault-pass").write_text("not the password\n")
    else:
        (project / ".vault-pass").unlink()
    for argv in (("ping",), ("scan",), ("plan", "playbooks/site.yml"), ("snapshot", "all")):  # run: a sandbox's
        proc = run(project, "safeapply", *argv)
        assert proc.returncode == ExitCode.VAULT, (argv, proc.stderr)
        line = _one_line(proc)
        assert line.startswith("safeapply: error: vault: ") and "vault-pass" in line
        assert VAULT_PASSWORD not in line


def test_vault_password_file_flag_script_env_and_vault_id(project: Path, tmp_path: Path) -> None:
    (project / "ansible.cfg").write_text("[defaults]\ninventory = inventories/home/hosts.yml\n")
    assert run(project, "safeapply", "ping").returncode == ExitCode.VAULT
    script = tmp_path / "vault-pass.sh"
    script.write_text(f"#!/bin/sh\necho '{VAULT_PASSWORD}'\n")
    script.chmod(0o700)
    for argv, env in (((f"--vault-password-file={project / '.vault-pass'}",), {}),
                      (("--vault-pass-file", str(script)), {}),
                      (("--vault-id", f"default@{script}"), {}),
                      ((), {"ANSIBLE_VAULT_PASSWORD_FILE": str(script)})):
        proc = run(project, "safeapply", "ping", *argv, env=env)
        assert proc.returncode == 0, (argv, env, proc.stderr)
    # a second identity: its own label, its own file; both are given
    other = project / "vars/other.yml"
    other.write_text("other_secret: labelled\n")
    (tmp_path / "prod-pass").write_text("prod password\n")
    encrypt(project, other, "--vault-id", f"prod@{tmp_path / 'prod-pass'}")
    proc = run(project, "safeapply", "ping", "--vault-id", f"prod@{tmp_path / 'prod-pass'}", "--vault-id",
               f"default@{script}", "-e", f"@{other}")
    assert proc.returncode == 0, proc.stderr
    proc = run(project, "safeapply", "ping", "--vault-id", f"default@{script}", "-e", f"@{other}")
    assert proc.returncode == ExitCode.VAULT and "prod" not in _one_line(proc).split("tried:")[1].split(")")[0]


def test_a_vaulted_extra_vars_file_resolves(project: Path) -> None:
    proc = run(project, "python", "-c", _SHOW_VARS, json.dumps({"extra_vars": ["@vars/extra.yml"]}))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["extra"]["extra_token"] == EXTRA_VALUE


def test_ask_vault_pass_needs_a_terminal(project: Path) -> None:
    for flag in ("-J", "--ask-vault-pass", "--ask-vault-password", "-K", "--ask-become-pass"):
        proc = run(project, "safeapply", "ping", flag)
        assert proc.returncode == ExitCode.USAGE, proc.stderr
        assert "needs a terminal" in _one_line(proc)


def test_ask_vault_pass_at_a_terminal(project: Path) -> None:
    """-J at a real pseudo-terminal (pexpect): the typed password decrypts the inventory; never echoed."""
    pexpect = pytest.importorskip("pexpect")
    (project / ".vault-pass").unlink()
    (project / "ansible.cfg").write_text("[defaults]\ninventory = inventories/home/hosts.yml\n")
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"}
    child = pexpect.spawn(str(BIN / "safeapply"), ["ping", "-J"], cwd=str(project), env=env, timeout=120,
                          encoding="utf-8")
    child.expect("Vault password: ")
    child.sendline(VAULT_PASSWORD)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert VAULT_PASSWORD not in (child.before or "")


def test_lint_finds_the_projects_roles(project: Path) -> None:
    """ansible-lint runs from the project's root with its ansible.cfg: roles_path finds roles/web (on main it ran
    in playbooks/ and blocked with syntax-check: role not found)."""
    proc = run(project, "safeapply", "lint", "playbooks/site.yml", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "syntax-check" not in proc.stdout


_SHOW_VARS = """
import json, sys
from safeapply import ansible_context
from safeapply.ansible_context import AnsibleArgs
from safeapply.inventory import resolve_hosts
args = AnsibleArgs(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(sys.argv[1]).items()})
ctx = ansible_context.activate(args)
print(json.dumps({"vars": resolve_hosts(None)[0].vars, "extra": ctx.extra_vars, "config": ctx.config_file,
                  "forks": ctx.forks}, default=str))
"""


def _vars(project: Path, **args: Any) -> dict[str, Any]:
    proc = run(project, "python", "-c", _SHOW_VARS, json.dumps(args))
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def test_command_line_and_ansible_cfg_fold_into_host_vars_at_ansibles_precedence(project: Path) -> None:
    """ansible.cfg < command line < inventory variables < -e, per option, as Ansible's config manager orders them
    for the ssh connection and the become plugin."""
    shown = _vars(project)
    v = shown["vars"]
    assert v["ansible_user"] == "cfguser" and v["ansible_ssh_timeout"] == 17  # ansible.cfg remote_user, timeout
    assert "ansible_become" not in v and "ansible_become_password" not in v
    assert shown["config"] == str(project / "ansible.cfg") and shown["forks"] == 5
    v = _vars(project, remote_user="cliuser", timeout=33, private_key_file="/k/id", ssh_common_args="-o A=b",
              ssh_extra_args="-o C=d", become=True, become_user="admin", become_method="su", forks=3)["vars"]
    assert (v["ansible_user"], v["ansible_ssh_timeout"], v["ansible_ssh_private_key_file"]) == ("cliuser", 33, "/k/id")
    assert (v["ansible_ssh_common_args"], v["ansible_ssh_extra_args"]) == ("-o A=b", "-o C=d")
    assert (v["ansible_become"], v["ansible_become_user"], v["ansible_become_method"]) == (True, "admin", "su")
    # the inventory's own variables beat the command line; -e beats the inventory
    inv = project / "inventories/home/host_vars"
    inv.mkdir()
    (inv / "h1.yml").write_text('ansible_user: invuser\nansible_become: false\nansible_become_user: "{{ token }}"\n'
                                'ansible_become_password: "{{ vault_token }}"\n')
    v = _vars(project, remote_user="cliuser", become=True, become_user="admin")["vars"]
    assert (v["ansible_user"], v["ansible_become"], v["ansible_become_user"]) == ("invuser", False, VAULT_VALUE)
    assert v["ansible_become_password"] == VAULT_VALUE  # templated with the vault secrets
    v = _vars(project, remote_user="cliuser", extra_vars=["ansible_user=evuser"])["vars"]
    assert v["ansible_user"] == "evuser"
    # group_vars beside the command's playbook count too (the loader's basedir, as the playbook executor sets it)
    (project / "playbooks/group_vars/web").mkdir(parents=True)
    (project / "playbooks/group_vars/web/conn.yml").write_text("ansible_ssh_common_args: -o From=playbook\n")
    assert "ansible_ssh_common_args" not in _vars(project)["vars"]
    assert _vars(project, playbook="playbooks/site.yml")["vars"]["ansible_ssh_common_args"] == "-o From=playbook"


def test_become_password_file_supplies_the_password_no_variable_sets(project: Path, tmp_path: Path) -> None:
    pw = tmp_path / "become-pass"
    pw.write_text("from the file\n")
    assert _vars(project, become_password_file=str(pw))["vars"]["ansible_become_password"] == "from the file"
    (project / "inventories/home/group_vars/all/become.yml").write_text('ansible_become_pass: "{{ vault_token }}"\n')
    assert _vars(project, become_password_file=str(pw))["vars"]["ansible_become_password"] == VAULT_VALUE


def test_runner_gets_paths_never_secrets(tmp_path: Path) -> None:
    """ansible-playbook's options for the run: files by path; a typed password only in a 0600 file."""
    from safeapply.ansible_context import AnsibleArgs, AnsibleContext
    from safeapply.vault import Prompted

    args = AnsibleArgs(vault_ids=("prod@/p/prod-pass",), vault_password_files=("/p/vp",), remote_user="u",
                       become=True, become_password_file="/p/bp", forks=7, timeout=9, ssh_common_args="-o X=y")
    ctx = AnsibleContext(args, None, Prompted(vault=(("default", "typed-secret"),), become="typed-become"))
    argv = ctx.args.playbook_args() + ctx.secret_args(tmp_path)
    assert "typed-secret" not in " ".join(argv) and "typed-become" not in " ".join(argv)
    assert argv[argv.index("--vault-password-file") + 1] == "/p/vp"
    assert argv[argv.index("--become-password-file") + 1] == "/p/bp"  # the user's file, not the typed one
    assert argv[argv.index("--forks") + 1] == "7" and "--become" in argv and argv[argv.index("--user") + 1] == "u"
    typed = Path(next(a for a in argv if a.startswith("default@")).split("@", 1)[1])
    assert typed.read_text() == "typed-secret\n" and oct(typed.stat().st_mode & 0o777) == "0o600"


def test_private_ansible_apis_we_rely_on() -> None:
    """Names that are not Ansible's public API: fail here when they drift."""
    from ansible._internal._templating._jinja_common import UndecryptableVaultError  # noqa: F401
    from ansible.cli import CLI
    from ansible.parsing.vault import VaultSecretsContext

    assert hasattr(VaultSecretsContext, "_current")
    assert callable(CLI.setup_vault_secrets) and callable(CLI.get_password_from_file)


@pytest.mark.parametrize("command", ["ping", "scan", "plan", "snapshot", "run", "rollback"])
def test_help_lists_the_pass_through_flags(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from safeapply.cli import main

    os.environ["COLUMNS"] = "250"
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--vault-password-file", "--vault-id", "--ask-vault-pass", "-J", "--user", "-u", "--private-key",
                 "--become", "-b", "--become-user", "--become-method", "--ask-become-pass", "-K",
                 "--become-password-file", "--forks", "-f", "--ssh-common-args", "--ssh-extra-args", "--timeout",
                 "-T", "--extra-vars", "-e"):
        assert f" {flag}" in out or f",{flag}" in out, (command, flag)
