"""Every own rule's pass/fail example playbooks, run through the real engine (own rules, real Ansible)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from safeapply.lint import Connection, Severity, lint_paths
from safeapply.lint.rules import EXAMPLES, RULES

IDS = [r.ID for r in RULES]


def own(path: Path, **kw: object) -> list[tuple[str, Severity]]:
    """Own rules only, on a copy alone in a fresh dir (an example's sibling must not define its variables)."""
    with tempfile.TemporaryDirectory() as d:
        copy = Path(d) / path.name
        shutil.copy(path, copy)
        report = lint_paths([copy], use_cache=False, ansible_lint=False, **kw)  # type: ignore[arg-type]
    return [(f.rule, f.severity) for f in report.findings]


def test_every_rule_has_doc_and_examples() -> None:
    assert len(set(IDS)) == len(IDS)
    for rule in RULES:
        assert rule.DOC and rule.SEVERITY in Severity
        assert (EXAMPLES / rule.ID / "pass.yml").is_file(), rule.ID
        assert (EXAMPLES / rule.ID / "fail.yml").is_file(), rule.ID


@pytest.mark.parametrize("rule_id", IDS)
def test_fail_example_triggers_rule(rule_id: str) -> None:
    found = own(EXAMPLES / rule_id / "fail.yml", connection=Connection(user="root", port=22))
    assert rule_id in [r for r, _ in found], found


@pytest.mark.parametrize("rule_id", IDS)
def test_pass_example_is_clean_for_rule(rule_id: str) -> None:
    found = own(EXAMPLES / rule_id / "pass.yml", connection=Connection(user="root", port=22))
    assert rule_id not in [r for r, _ in found], found


def test_suggestions() -> None:
    report = lint_paths([EXAMPLES / "invalid-choice" / "fail.yml"], use_cache=False, ansible_lint=False)
    (f,) = [f for f in report.findings if f.rule == "invalid-choice"]
    assert "`stopped`" in f.fix and f.line == 7
    report = lint_paths([EXAMPLES / "unknown-module" / "fail.yml"], use_cache=False, ansible_lint=False)
    (f,) = [f for f in report.findings if f.rule == "unknown-module"]
    assert "ansible.builtin.service" in f.fix and f.severity is Severity.BLOCKING


def test_memory_limit_suggests_memory() -> None:
    from safeapply.lint.modules import closest

    options = ["memory", "memory_reservation", "memory_swap", "memory_swappiness", "kernel_memory", "name"]
    assert closest("memory_limit", options)[0] == "memory"
    assert closest("stop", ["reloaded", "restarted", "started", "stopped"])[0] == "stopped"


def test_sshd_lockout_uses_connection_facts(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text((EXAMPLES / "sshd-lockout" / "fail.yml").read_text())
    on_2222 = own(pb, connection={"web1": Connection(user="deploy", port=2222)})
    assert "sshd-lockout" not in [r for r, _ in on_2222]
    pb.write_text("""- hosts: all
  tasks:
    - name: Only admins
      ansible.builtin.lineinfile:
        path: /etc/ssh/sshd_config
        line: AllowUsers admin
        validate: sshd -t -f %s
    - name: No root
      ansible.builtin.lineinfile:
        path: /etc/ssh/sshd_config
        line: PermitRootLogin no
        validate: sshd -t -f %s
""")
    assert ("sshd-lockout", Severity.BLOCKING) in own(pb, connection=Connection(user="root"))
    assert "sshd-lockout" not in [r for r, _ in own(pb, connection=Connection(user="admin"))]


def test_firewall_rules_for_ufw_and_nft_commands(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text("""- hosts: all
  tasks:
    - name: Enable ufw
      community.general.ufw:
        state: enabled
        policy: deny
""")
    assert ("firewall-lockout", Severity.BLOCKING) in own(pb)
    pb.write_text("""- hosts: all
  tasks:
    - name: Allow ssh
      community.general.ufw:
        rule: allow
        port: "22"
        proto: tcp
    - name: Enable ufw
      community.general.ufw:
        state: enabled
        policy: deny
""")
    assert "firewall-lockout" not in [r for r, _ in own(pb)]
    pb.write_text("""- hosts: all
  tasks:
    - name: nft drop
      ansible.builtin.copy:
        dest: /etc/nftables.conf
        mode: "0644"
        content: |
          table inet filter {
            chain input { type filter hook input priority 0; policy drop; tcp dport 443 accept }
          }
""")
    assert ("firewall-lockout", Severity.BLOCKING) in own(pb)


@pytest.mark.parametrize(("expr", "severity"), [
    ("content: \"{{ lookup('pipe', 'id') }}\"", Severity.BLOCKING),
    ("content: \"{{ lookup('ansible.builtin.lines', 'cat /etc/passwd') }}\"", Severity.BLOCKING),
    ("content: \"{{ query('url', 'http://127.0.0.1/x') | join }}\"", Severity.BLOCKING),
    ("content: \"{{ q(kind, 'x') | join }}\"", Severity.BLOCKING),  # a lookup named by a variable
    ("content: \"{{ lookup('env', 'HOME') }}\"", Severity.WARNING),
    ("content: \"{{ lookup('file', 'files/motd') }}\"", None),
])
def test_controller_lookups_are_gated(tmp_path: Path, expr: str, severity: Severity | None) -> None:
    """Issue 11 item 1: a lookup that runs a command or fetches a URL on the controller blocks in lint."""
    pb = tmp_path / "pb.yml"
    pb.write_text("- name: P\n  hosts: all\n  vars: {kind: pipe}\n  tasks:\n    - name: T\n"
                  f"      ansible.builtin.copy:\n        dest: /etc/x\n        mode: '0644'\n        {expr}\n")
    report = lint_paths([pb], use_cache=False, ansible_lint=False, connection=Connection(user="root", port=22))
    assert [f.severity for f in report.findings if f.rule == "controller-lookup"] == ([severity] if severity else [])


def test_controller_lookup_loops_are_gated(tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text("- name: P\n  hosts: all\n  tasks:\n    - name: T\n      ansible.builtin.debug: {var: item}\n"
                  "      with_pipe: ls /root\n")
    report = lint_paths([pb], use_cache=False, ansible_lint=False)
    [f] = [f for f in report.findings if f.rule == "controller-lookup"]
    assert f.severity is Severity.BLOCKING and f.line == 6 and "with_pipe" in f.message
