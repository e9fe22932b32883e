"""Lint on the whole project (issue 12 item 4): roles found through ansible.cfg's `roles_path` (and their edits
reaching the cache), `# noqa`/skip_list for safeapply's own rules, `--accept`, and the login user the run
resolves for each host (ansible_user, else ansible.cfg's remote_user, else ssh's config / the local user)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from safeapply.cli import main
from safeapply.lint import lint_paths
from safeapply.lint.engine import start
from safeapply.run_options import RunOptions
from safeapply.run_stages import lint as run_lint
from safeapply.run_stages import resolve

SAFEAPPLY = Path(sys.executable).parent / "safeapply"

OPEN = """- hosts: all
  gather_facts: false
  tasks:
    - name: open file
      ansible.builtin.copy:
        dest: /tmp/cf-open.txt
        content: "x\\n"
        mode: "0666"{noqa_warn}
    - name: system file
      ansible.builtin.copy:
        dest: /etc/cf-open.conf
        content: "x\\n"
        mode: "0666"{noqa_block}
"""


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))


def _rules(pb: Path, **kw: object) -> dict[str, str]:
    report = lint_paths([pb], ansible_lint=False, use_cache=False, **kw)  # type: ignore[arg-type]
    return {f.rule: str(f.severity) for f in report.findings}


# ---- noqa, skip_list, --accept ----------------------------------------------------------------------------

def test_noqa_silences_a_safeapply_warning_but_not_a_blocking_finding(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text(OPEN.format(noqa_warn="", noqa_block=""))
    assert _rules(pb) == {"world-writable": "warning", "writable-system-path": "blocking"}
    pb.write_text(OPEN.format(noqa_warn="  # noqa: world-writable", noqa_block="  # noqa: writable-system-path"))
    report = lint_paths([pb], ansible_lint=False, use_cache=False)
    assert [(f.rule, f.severity) for f in report.findings] == [("writable-system-path", "blocking")]
    assert "--accept writable-system-path:pb.yml:13" in report.findings[0].fix


def test_skip_list_silences_a_safeapply_rule(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text(OPEN.format(noqa_warn="", noqa_block=""))
    (tmp_path / ".ansible-lint").write_text("skip_list:\n  - world-writable\n  - writable-system-path\n")
    assert _rules(pb) == {"writable-system-path": "blocking"}  # blocking: only --accept lets it through


@pytest.mark.parametrize("spec", ["writable-system-path", "writable-system-path:pb.yml:13"])
def test_accept_lets_a_blocking_finding_through_and_says_so(tmp_path: Path, spec: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text(OPEN.format(noqa_warn="", noqa_block=""))
    assert main(["lint", "--json", str(pb)]) == 16
    capsys.readouterr()
    assert main(["lint", "--json", "--accept", spec, str(pb)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and [(a["rule"], a["line"], a["accepted_by"]) for a in out["accepted"]] == [
        ("writable-system-path", 13, spec)]


def test_accept_of_another_line_does_not_let_it_through(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text(OPEN.format(noqa_warn="", noqa_block=""))
    assert main(["lint", "--accept", "writable-system-path:pb.yml:12", str(pb)]) == 16
    assert main(["lint", "--accept", "nonsense:pb.yml", str(pb)]) == 2


# ---- roles through roles_path ----------------------------------------------------------------------------

def _lint_cli(cwd: Path, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAFEAPPLY_STATE_DIR": str(state)}
    env.pop("ANSIBLE_ROLES_PATH", None)
    return subprocess.run([str(SAFEAPPLY), "lint", "--json", "site.yml"], cwd=cwd, env=env, capture_output=True,
                          text=True, check=False, timeout=300)


def test_role_found_through_roles_path_is_linted_and_its_edits_reach_the_cache(tmp_path: Path) -> None:
    shared = tmp_path / "shared-roles" / "web" / "tasks"
    shared.mkdir(parents=True)
    good = "- name: motd\n  ansible.builtin.copy: {dest: /etc/motd, content: \"hi\\n\", mode: \"0644\"}\n"
    (shared / "main.yml").write_text(good)
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "ansible.cfg").write_text(f"[defaults]\nroles_path = {tmp_path / 'shared-roles'}\n")
    (proj / "site.yml").write_text("- hosts: all\n  gather_facts: false\n  roles:\n    - web\n")
    state = tmp_path / "state"

    first = _lint_cli(proj, state)
    assert first.returncode == 0, first.stdout + first.stderr
    (shared / "main.yml").write_text(good.replace("ansible.builtin.copy", "ansible.builtin.copyy"))
    typo = _lint_cli(proj, state)  # the same project tree: only the role outside it changed
    assert typo.returncode == 16, typo.stdout + typo.stderr
    found = json.loads(typo.stdout)
    assert any(f["rule"] == "unknown-module" and f["file"].endswith("web/tasks/main.yml")
               for f in found["findings"]), found["findings"]
    (shared / "main.yml").write_text(good)
    assert _lint_cli(proj, state).returncode == 0


# ---- the login user the run resolves --------------------------------------------------------------------

SSHD = """- hosts: all
  gather_facts: false
  tasks:
    - name: harden sshd
      ansible.builtin.copy:
        dest: /etc/ssh/sshd_config.d/10-cf.conf
        content: "PermitRootLogin no\\nAllowUsers alice\\n"
        mode: "0644"
        validate: /usr/sbin/sshd -t -f %s
    - name: sudo for alice
      ansible.builtin.copy:
        dest: /etc/sudoers.d/alice
        content: "alice ALL=(ALL) NOPASSWD: ALL\\n"
        mode: "0440"
"""


def _run_lint(tmp_path: Path, host_line: str) -> dict[str, str]:
    (tmp_path / "ssh_config").write_text("Host *\n  User alice\n")
    inv = tmp_path / "hosts"
    inv.write_text(f"[web]\n{host_line}\n")
    pb = tmp_path / "pb.yml"
    pb.write_text(SSHD)
    opts = RunOptions(playbook=pb, inventory=[str(inv)])
    out = run_lint(opts, resolve(opts), start([pb], use_cache=False, ansible_lint=False))
    return {f.rule: str(f.severity) for f in out.report.findings}


def test_lockout_rules_use_the_user_ssh_logs_in_as(tmp_path: Path) -> None:
    cfg = f"ansible_ssh_common_args='-F {tmp_path / 'ssh_config'}'"
    rules = _run_lint(tmp_path, f"h1 ansible_host=192.0.2.1 {cfg}")  # no ansible_user: ssh's config says alice
    assert "sshd-lockout" not in rules, rules
    assert rules.get("unvalidated-critical-file") == "blocking"  # alice needs sudo: a broken sudoers shuts out
    root = _run_lint(tmp_path, f"h1 ansible_host=192.0.2.1 ansible_user=root {cfg}")
    assert root.get("sshd-lockout") == "blocking" and root.get("unvalidated-critical-file") == "warning"


def test_lockout_rules_use_ansible_cfg_remote_user(tmp_path: Path) -> None:
    (tmp_path / "ansible.cfg").write_text("[defaults]\nremote_user = alice\n")
    (tmp_path / "hosts").write_text("h1 ansible_host=192.0.2.1\n")
    (tmp_path / "pb.yml").write_text(SSHD)
    code = ("from pathlib import Path\nfrom safeapply.run_options import RunOptions\n"
            "from safeapply.run_stages import lint, resolve\nfrom safeapply.lint.engine import start\n"
            "o = RunOptions(playbook=Path('pb.yml'), inventory=['hosts'])\n"
            "r = lint(o, resolve(o), start([o.playbook], use_cache=False, ansible_lint=False)).report\n"
            "print(sorted(f.rule for f in r.blocking))\n")
    env = {**os.environ, "SAFEAPPLY_STATE_DIR": str(tmp_path / "state"), "HOME": str(tmp_path)}
    env.pop("ANSIBLE_REMOTE_USER", None)
    env.pop("ANSIBLE_CONFIG", None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['unvalidated-critical-file']", proc.stdout
