"""Variables in the intent come from every source Ansible reads, at its precedence — one test per level, each
comparing the value the intent resolved with what a real ansible-playbook run prints for the same host.

Variable `v<k>` is set at every level up to k (to that level's name), so Ansible must pick level k for it:
the test for level k fails when the intent misses that source or ranks it below the one before."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from safeapply.intent.load import UNRESOLVED, PlaybookLoader

LEVELS = [  # Ansible's order, lowest first (docs: "Understanding variable precedence")
    "role_defaults", "inventory_file_all", "inventory_file_group", "inventory_group_vars_all",
    "playbook_group_vars_all", "inventory_group_vars_group", "playbook_group_vars_group", "inventory_file_host",
    "inventory_host_vars", "playbook_host_vars", "play_vars", "play_vars_prompt", "play_vars_files", "role_vars",
    "block_vars", "task_vars", "role_params", "include_params", "extra_vars_file",
]


def _names(level: str) -> list[str]:
    """The variables set at this level: every v<k> whose own level is this one or higher."""
    i = LEVELS.index(level)
    return [f"v{k}" for k in range(i, len(LEVELS))]


def _yaml(level: str, indent: str = "") -> str:
    return "".join(f"{indent}{n}: {level}\n" for n in _names(level))


def _ini(level: str) -> str:
    return " ".join(f"{n}={level}" for n in _names(level))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("precedence")
    inv, pb = d / "inventory", d / "playbooks"
    for sub in ("group_vars", "host_vars"):
        (inv / sub).mkdir(parents=True)
        (pb / sub).mkdir(parents=True)
    for sub in ("defaults", "vars", "tasks"):
        (pb / "roles" / "r" / sub).mkdir(parents=True)
    (inv / "hosts.ini").write_text(
        f"[web]\nh1 ansible_connection=local ansible_python_interpreter={sys.executable} "
        f"{_ini('inventory_file_host')}\n"
        f"[web:vars]\n{_ini('inventory_file_group').replace(' ', chr(10))}\n"
        f"[all:vars]\n{_ini('inventory_file_all').replace(' ', chr(10))}\n")
    (inv / "group_vars" / "all.yml").write_text(_yaml("inventory_group_vars_all"))
    (inv / "group_vars" / "web.yml").write_text(_yaml("inventory_group_vars_group"))
    (inv / "host_vars" / "h1.yml").write_text(_yaml("inventory_host_vars"))
    (pb / "group_vars" / "all.yml").write_text(_yaml("playbook_group_vars_all"))
    (pb / "group_vars" / "web.yml").write_text(_yaml("playbook_group_vars_group"))
    (pb / "host_vars" / "h1.yml").write_text(_yaml("playbook_host_vars"))
    (pb / "roles" / "r" / "defaults" / "main.yml").write_text(_yaml("role_defaults"))
    (pb / "roles" / "r" / "vars" / "main.yml").write_text(_yaml("role_vars"))
    (pb / "vars.yml").write_text(_yaml("play_vars_files"))
    (d / "extra.yml").write_text(_yaml("extra_vars_file"))
    shown = "".join(f"    - name: show v{k}\n      debug: {{msg: 'v{k}={{{{ v{k} }}}}'}}\n      vars:\n"
                    f"{_yaml('task_vars', '        ')}" for k in range(len(LEVELS)))
    (pb / "roles" / "r" / "tasks" / "shown.yml").write_text(shown.replace("\n    ", "\n").lstrip())
    (pb / "roles" / "r" / "tasks" / "main.yml").write_text(
        f"- block:\n    - include_tasks: shown.yml\n      vars:\n{_yaml('include_params', '        ')}"
        f"  vars:\n{_yaml('block_vars', '    ')}")
    params = "".join(f"      {n}: role_params\n" for n in _names("role_params"))
    prompts = "".join(f"    - {{name: {n}, prompt: {n}, default: play_vars_prompt, private: false}}\n"
                      for n in _names("play_vars_prompt"))
    (pb / "site.yml").write_text(
        f"- hosts: web\n  gather_facts: false\n  vars:\n{_yaml('play_vars', '    ')}  vars_files: [vars.yml]\n"
        f"  vars_prompt:\n{prompts}"
        f"  roles:\n    - role: r\n{params}")
    return d


@pytest.fixture(scope="module")
def ansible_says(project: Path) -> dict[str, str]:
    """What ansible-playbook prints for the debug task, run for real (local connection, debug only; no terminal:
    a prompt takes its default)."""
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_STDOUT_CALLBACK": "default"}
    out = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "../inventory/hosts.ini",
                          "site.yml", "-e", "@../extra.yml"], cwd=project / "playbooks", env=env,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True).stdout
    return dict(m.split("=", 1) for m in re.findall(r'"msg": "(v\d+=.*)"', out))


@pytest.fixture(scope="module")
def intent_says(project: Path) -> dict[str, str]:
    loader = PlaybookLoader(project / "playbooks" / "site.yml", [str(project / "inventory" / "hosts.ini")],
                            [f"@{project / 'extra.yml'}"])
    msgs = [rt.args["msg"] for rt in loader.tasks("h1") if " show v" in rt.ref.name]
    return dict(m.split("=", 1) for m in msgs if m is not UNRESOLVED)


@pytest.mark.parametrize("level", LEVELS)
def test_each_level_wins_over_the_ones_below_as_in_ansible(level: str, ansible_says: dict[str, str],
                                                           intent_says: dict[str, str]) -> None:
    var = f"v{LEVELS.index(level)}"
    assert ansible_says[var] == level  # the project is what it says: Ansible picks this level
    assert intent_says.get(var, "unresolved") == ansible_says[var]


def test_runtime_values_stay_unresolved(tmp_path: Path) -> None:
    (tmp_path / "hosts.ini").write_text("h1 ansible_connection=local\n")
    (tmp_path / "pb.yml").write_text("""- hosts: all
  gather_facts: false
  tasks:
    - command: hostname
      register: out
    - set_fact: {name_now: "{{ out.stdout }}"}
    - name: uses it
      copy: {dest: "/etc/{{ name_now }}.conf", content: x}
""")
    loader = PlaybookLoader(tmp_path / "pb.yml", [str(tmp_path / "hosts.ini")], [])
    [task] = [rt for rt in loader.tasks("h1") if rt.ref.name == "uses it"]
    assert task.args["dest"] is UNRESOLVED and task.unresolved
