"""An ordinary Ansible project in a temp dir, as users keep one: ansible.cfg at the root (inventory, roles_path,
remote_user, vault_password_file), inventories/home/ with a vaulted group_vars/all/vault.yml, playbooks/ using a
role from roles/. Encrypted by the venv's own `ansible-vault`, so the fixture is real Ansible input."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

VAULT_PASSWORD = "correct horse vault staple"
VAULT_VALUE = "tok-4f1e-vaulted-value"  # in group_vars/all/vault.yml
EXTRA_VALUE = "xv-9c2b-vaulted-extra"  # in a vaulted -e @file
PLAY_VALUE = "pv-77d0-vaulted-play-var"  # in a vaulted vars_files file of the play
BIN = Path(sys.executable).parent


def run(cwd: Path, *argv: str, env: Mapping[str, str] | None = None,
        stdin: int | None = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    """A command run from the project's root, as a user types it there (a fresh process: Ansible reads the
    ansible.cfg of *its* current directory)."""
    full = {**os.environ, **(env or {})}
    full.pop("ANSIBLE_CONFIG", None)
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=cwd, env=full, capture_output=True, text=True,
                          stdin=stdin, timeout=900, check=False)


def encrypt(cwd: Path, path: Path, *args: str) -> None:
    proc = run(cwd, "ansible-vault", "encrypt", *args, str(path))
    assert proc.returncode == 0, proc.stderr


def make_project(root: Path, host: str, host_vars: Mapping[str, Any], cfg_defaults: Mapping[str, str] = {},
                 tasks: str = "") -> Path:
    """The project, its one host `host` (group `web`) with `host_vars`; returns the root."""
    for d in ("playbooks/vars", "roles/web/tasks", "inventories/home/group_vars/all", "vars"):
        (root / d).mkdir(parents=True, exist_ok=True)
    cfg = {"inventory": "inventories/home/hosts.yml", "roles_path": "roles", "vault_password_file": ".vault-pass",
           **cfg_defaults}
    (root / "ansible.cfg").write_text("[defaults]\n" + "".join(f"{k} = {v}\n" for k, v in cfg.items()))
    (root / ".vault-pass").write_text(VAULT_PASSWORD + "\n")
    (root / ".vault-pass").chmod(0o600)
    inv = {"all": {"children": {"web": {"hosts": {host: dict(host_vars)}}}}}
    (root / "inventories/home/hosts.yml").write_text(yaml.safe_dump(inv, sort_keys=False))
    vault = root / "inventories/home/group_vars/all/vault.yml"
    vault.write_text(f"vault_token: {VAULT_VALUE}\n")
    encrypt(root, vault)
    (root / "inventories/home/group_vars/all/vars.yml").write_text('token: "{{ vault_token }}"\n')
    play = root / "playbooks/vars/play.yml"
    play.write_text(f"play_token: {PLAY_VALUE}\n")
    encrypt(root, play)
    extra = root / "vars/extra.yml"
    extra.write_text(f"extra_token: {EXTRA_VALUE}\n")
    encrypt(root, extra)
    (root / "roles/web/tasks/main.yml").write_text(
        "- name: Marker from the role\n  ansible.builtin.copy:\n    dest: /root/safeapply-ctx-marker\n"
        '    content: "{{ token }} {{ play_token }}\\n"\n    mode: "0600"\n  no_log: true\n')
    (root / "playbooks/site.yml").write_text(
        f"- name: Site\n  hosts: web\n  gather_facts: false\n  vars_files:\n    - vars/play.yml\n  roles:\n"
        f"    - web\n{tasks}")
    return root
