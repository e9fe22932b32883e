"""Issue 14, lint precision: each false block and each miss, with a pass and a fail playbook per cause.

Own rules run through the real engine and real Ansible (no mocks); ansible-lint runs only in the fail-open
tests, which are about it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from safeapply.lint import Connection, Severity, lint_paths
from safeapply.lint.model import Finding
from safeapply.lint.modules import collection_installed


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))


def write(base: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_text(text)
    return base / next(iter(files))


def own(path: Path, **kw: object) -> list[Finding]:
    return lint_paths([path], use_cache=False, ansible_lint=False, **kw).findings  # type: ignore[arg-type]


def blocks(path: Path, **kw: object) -> list[tuple[str, int]]:
    return [(f.rule, f.line) for f in own(path, **kw) if f.severity is Severity.BLOCKING]


def play(tasks: str, head: str = "") -> str:
    return f"- name: Test play\n  hosts: all\n{head}  tasks:\n{tasks}"


# ---- modules: action redirects, tombstones -----------------------------------------------------------

def test_yum_runs_through_the_action_redirect(tmp_path: Path) -> None:
    pb = write(tmp_path, {"pb.yml": play("""    - name: Old style install
      yum:
        name: httpd
        state: present
""")})
    assert blocks(pb) == []
    pb.write_text(play("""    - name: Old style install, bad option (checked against dnf, where yum goes)
      ansible.builtin.yum:
        name: httpd
        enablerep: epel
"""))
    assert blocks(pb) == [("unknown-option", 7)]


def test_removed_action_is_named_with_ansible_s_own_message(tmp_path: Path) -> None:
    pb = write(tmp_path, {"pb.yml": play("""    - name: Old include
      include: other.yml
""")})
    (f,) = [f for f in own(pb) if f.rule == "unknown-module"]
    assert f.severity is Severity.BLOCKING and "include_tasks" in f.message


@pytest.mark.skipif(not collection_installed("community.docker"), reason="needs community.docker")
def test_community_general_rename_follows_collection_routing(tmp_path: Path) -> None:
    pb = write(tmp_path, {"pb.yml": play("""    - name: Renamed module, still routed
      community.general.docker_container:
        name: web
        image: nginx:1.27
        memory: 256m
""")})
    assert blocks(pb) == []
    pb.write_text(pb.read_text().replace("memory:", "memory_limit:"))
    assert blocks(pb) == [("unknown-option", 8)]


# ---- options: pass-through to backends; choices through Ansible's coercion ---------------------------

def test_package_passes_options_to_apt_and_dnf(tmp_path: Path) -> None:
    pb = write(tmp_path, {"pb.yml": play("""    - name: Install
      ansible.builtin.package:
        name: nginx
        state: present
        update_cache: true
        disable_gpg_check: true
        autoremove: true
""")})
    assert blocks(pb) == []
    pb.write_text(play("""    - name: Install with a typo
      ansible.builtin.package:
        name: nginx
        update_cahce: true
    - name: An option dnf has, with apt chosen
      ansible.builtin.package:
        name: nginx
        use: apt
        disable_gpg_check: true
"""))
    assert blocks(pb) == [("unknown-option", 7), ("unknown-option", 12)]


def test_service_passes_options_to_systemd(tmp_path: Path) -> None:
    pb = write(tmp_path, {"pb.yml": play("""    - name: Restart
      ansible.builtin.service:
        name: nginx
        state: restarted
        daemon_reload: true
""")})
    assert blocks(pb) == []
    pb.write_text(pb.read_text().replace("daemon_reload", "daemon_reloaded"))
    assert blocks(pb) == [("unknown-option", 8)]


def test_yaml_booleans_on_yes_no_choices(tmp_path: Path) -> None:
    pb = write(tmp_path, {"pb.yml": play("""    - name: Upgrade
      ansible.builtin.apt:
        upgrade: yes
        update_cache: yes
""")})
    assert blocks(pb) == []
    pb.write_text(pb.read_text().replace("upgrade: yes", "upgrade: everything"))
    assert blocks(pb) == [("invalid-choice", 6)]


# ---- variables with Ansible's scoping ---------------------------------------------------------------

def test_block_guard_and_default_chains(tmp_path: Path) -> None:
    pb = write(tmp_path, {"pb.yml": play("""    - name: Only when configured
      when: backup_target is defined
      block:
        - name: Show it
          ansible.builtin.debug:
            msg: "{{ backup_target }} {{ (app_opts | default({})).port | default(80) }}"
        - name: Nested attribute with a default
          ansible.builtin.debug:
            msg: "{{ app_cfg.listen.port | default(8080) }}"
""")})
    assert blocks(pb) == []
    pb.write_text(play("""    - name: Unguarded
      ansible.builtin.debug:
        msg: "{{ backup_target }}"
"""))
    assert blocks(pb) == [("undefined-variable", 6)]


def test_include_tasks_when_guards_the_included_file(tmp_path: Path) -> None:
    pb = write(tmp_path, {"pb.yml": play("""    - name: Optional part
      ansible.builtin.include_tasks: extra.yml
      when: extra_pkg is defined
"""), "extra.yml": """- name: Install it
  ansible.builtin.debug:
    msg: "{{ extra_pkg }}"
"""})
    assert blocks(pb) == []
    pb.write_text(pb.read_text().replace("      when: extra_pkg is defined\n", ""))
    assert blocks(pb) == [("undefined-variable", 3)]


def test_symlinked_role_defaults_are_read(tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "web"
    write(shared, {"tasks/main.yml": """- name: Listen
  ansible.builtin.debug:
    msg: "{{ web_port }}"
""", "defaults/main.yml": "web_port: 8080\n"})
    proj = tmp_path / "proj"
    pb = write(proj, {"site.yml": "- name: Site\n  hosts: all\n  roles:\n    - web\n"})
    (proj / "roles").mkdir()
    (proj / "roles" / "web").symlink_to(shared, target_is_directory=True)
    assert blocks(pb) == []
    (shared / "defaults" / "main.yml").write_text("other: 1\n")
    assert [r for r, _ in blocks(pb)] == ["undefined-variable"]


def test_task_file_lints_as_a_task_file(tmp_path: Path) -> None:
    tasks = write(tmp_path, {"roles/web/tasks/main.yml": """- name: Install
  ansible.builtin.apt:
    name: nginx
    state: present
""", "roles/web/defaults/main.yml": "x: 1\n"})
    assert blocks(tasks) == []
    tasks.write_text(tasks.read_text().replace("ansible.builtin.apt", "ansible.builtin.aptt"))
    assert blocks(tasks) == [("unknown-module", 2)]


# ---- filters and tests ------------------------------------------------------------------------------

def test_test_used_as_filter(tmp_path: Path) -> None:
    pb = write(tmp_path, {"pb.yml": play("""    - name: Probe
      ansible.builtin.command: /bin/true
      register: probe
      changed_when: false
    - name: Report
      ansible.builtin.debug:
        msg: "{{ probe.stdout | trim }}"
      when: probe is failed or probe.stdout is search('x')
""")})
    assert blocks(pb) == []
    pb.write_text(pb.read_text().replace("probe is failed or probe.stdout is search('x')", "probe | failed"))
    (f,) = [f for f in own(pb) if f.rule == "unknown-filter"]
    assert f.severity is Severity.BLOCKING and "is a Jinja test" in f.message and "is failed" in f.fix


@pytest.mark.skipif(not collection_installed("ansible.utils"), reason="needs ansible.utils")
def test_removed_filter_is_named_with_its_replacement(tmp_path: Path) -> None:
    pb = write(tmp_path, {"pb.yml": play("""    - name: Network
      ansible.builtin.debug:
        msg: "{{ '10.0.0.1/24' | ansible.utils.ipaddr('network') }}"
""")})
    assert blocks(pb) == []
    pb.write_text(pb.read_text().replace("ansible.utils.ipaddr", "ipaddr"))
    (f,) = [f for f in own(pb) if f.rule == "unknown-filter"]
    assert f.severity is Severity.BLOCKING and "`ansible.utils.ipaddr`" in f.fix


# ---- src: through Ansible's search paths ------------------------------------------------------------

def test_src_found_in_role_files_and_templates(tmp_path: Path) -> None:
    pb = write(tmp_path, {"site.yml": "- name: Site\n  hosts: all\n  roles:\n    - app\n",
                          "roles/app/tasks/main.yml": """- name: Config
  ansible.builtin.template:
    src: app.conf.j2
    dest: /etc/app.conf
    mode: "0644"
- name: Script
  ansible.builtin.copy:
    src: backup.sh
    dest: /usr/local/bin/backup.sh
    mode: "0755"
""", "roles/app/templates/app.conf.j2": "x=1\n", "roles/app/files/backup.sh": "#!/bin/sh\n"})
    assert blocks(pb) == []
    (tmp_path / "roles/app/files/backup.sh").unlink()
    assert blocks(pb) == [("missing-src", 8)]


# ---- new checks -------------------------------------------------------------------------------------

def test_plaintext_secret_in_play_vars_never_echoes_the_value(tmp_path: Path) -> None:
    pb = write(tmp_path, {"pb.yml": play("""    - name: Use it
      ansible.builtin.debug:
        msg: connecting
""", head='  vars:\n    db_password: "S3cr3t-never-print"\n    gitlab: "glpat-abcdefghijklmnopqrstu"\n')})
    found = [f for f in own(pb) if f.rule == "plaintext-secret"]
    assert {f.line for f in found} == {4, 5} and all(f.severity is Severity.WARNING for f in found)
    assert not any("S3cr3t" in f.message + f.fix or "glpat" in f.message + f.fix for f in found)
    assert "`db_password`" in found[0].message
    pb.write_text(pb.read_text().replace('"S3cr3t-never-print"', '"{{ vault_db_password }}"')
                  .replace('    gitlab: "glpat-abcdefghijklmnopqrstu"\n', "    vault_db_password: !vault |\n"
                           "      $ANSIBLE_VAULT;1.1;AES256\n      6162\n"))
    assert [f for f in own(pb) if f.rule == "plaintext-secret"] == []


def test_writable_system_tree_names_resolved_path_and_octal(tmp_path: Path) -> None:
    pb = write(tmp_path, {"pb.yml": play("""    - name: Config tree
      ansible.builtin.file:
        path: "{{ app_conf_dir }}/conf.d"
        state: directory
        mode: 0777
        recurse: true
""", head="  vars:\n    app_conf_dir: /etc/myapp\n")})
    (f,) = [f for f in own(pb) if f.rule == "writable-system-path"]
    assert f.severity is Severity.BLOCKING and "/etc/myapp/conf.d" in f.message and "0777" in f.message
    assert "511" not in f.message and "recurse" in f.message
    pb.write_text(pb.read_text().replace("mode: 0777", 'mode: "0775"'))
    assert [r for r, _ in blocks(pb)] == ["writable-system-path"]  # group-writable on /etc blocks too
    pb.write_text(pb.read_text().replace('mode: "0775"', 'mode: "0755"'))
    assert blocks(pb) == []


@pytest.mark.parametrize("command", [
    "iptables -P INPUT DROP", "iptables --policy INPUT DROP", "iptables -A INPUT -j DROP",
    "nft add rule inet filter input drop", "ufw default deny incoming",
])
def test_firewall_lockout_through_commands(command: str, tmp_path: Path) -> None:
    pb = write(tmp_path, {"pb.yml": play(f"""    - name: Allow web
      ansible.builtin.command: iptables -A INPUT -p tcp --dport 443 -j ACCEPT
    - name: Close the rest
      ansible.builtin.command: {command}
""")})
    assert ("firewall-lockout", 6) in blocks(pb, connection=Connection(user="deploy", port=22))
    pb.write_text(pb.read_text().replace("--dport 443", "--dport 22"))
    if command.startswith("ufw"):
        pb.write_text(pb.read_text().replace("iptables -A INPUT -p tcp --dport 22 -j ACCEPT", "ufw allow 22/tcp"))
    assert blocks(pb, connection=Connection(user="deploy", port=22)) == []


def test_sudoers_without_validate_depends_on_the_login_user(tmp_path: Path) -> None:
    pb = write(tmp_path, {"pb.yml": play("""    - name: Let deploy sudo
      ansible.builtin.lineinfile:
        path: /etc/sudoers.d/deploy
        line: "deploy ALL=(ALL) NOPASSWD: ALL"
        create: true
        mode: "0440"
""")})
    assert blocks(pb, connection={"web1": Connection(user="deploy")}) == [("unvalidated-critical-file", 5)]
    as_root = own(pb, connection={"web1": Connection(user="root")})
    assert [(f.rule, f.severity) for f in as_root] == [("unvalidated-critical-file", Severity.WARNING)]
    pb.write_text(play(pb.read_text().split("tasks:\n", 1)[1], head="  remote_user: ubuntu\n"))
    assert [r for r, _ in blocks(pb)] == ["unvalidated-critical-file"]  # the play says who logs in


# ---- never fail open --------------------------------------------------------------------------------

def test_rejected_ansible_lint_config_is_a_warning_and_strict_blocks(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".git").mkdir()
    write(tmp_path, {".ansible-lint": "profile: production\nnot_a_real_key: 1\n"})
    pb = write(tmp_path, {"site.yml": "- name: Site\n  hosts: all\n  roles:\n    - no_such_role\n"})
    report = lint_paths([pb], use_cache=False)
    (f,) = [f for f in report.findings if f.rule == "lint-incomplete"]
    assert f.severity is Severity.WARNING and "syntax check" in f.message and "not_a_real_key" in f.message
    assert ".ansible-lint" in f.fix
    assert lint_paths([pb], use_cache=False, strict_tools=True).blocking
    from safeapply.cli import main

    assert main(["lint", "--no-cache", "--strict", "--json", str(pb)]) == 16
    assert json.loads(capsys.readouterr().out)["blocking"] >= 1


def test_syntax_check_that_did_not_run_is_named(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    pb = write(tmp_path, {"site.yml": "- name: From a collection\n"
                                      "  ansible.builtin.import_playbook: nosuchns.nosuchcoll.site\n"})
    report = lint_paths([pb], use_cache=False)
    hits = [f for f in report.findings if f.rule == "lint-incomplete"]
    assert hits and "syntax check did not run" in hits[0].message and "ansible-galaxy" in hits[0].fix
    assert not [f for f in report.findings if f.rule == "internal-error"]


def test_yaml_error_has_line_and_column(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    shutil.copy(Path(__file__).parent / "lint_data" / "invalid_yaml.yml", pb)
    (f,) = [f for f in own(pb) if f.rule == "yaml-invalid"]
    assert f.line == 7 and "line 7, column 6" in f.message


def test_every_new_rule_is_registered() -> None:
    from safeapply.lint.rules import RULES

    ids = {r.ID for r in RULES}
    assert {"unknown-filter", "missing-src", "writable-system-path"} <= ids
