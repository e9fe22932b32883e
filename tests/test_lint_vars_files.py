"""Lint reads a project's vars the way Ansible does: a play's `vars_files:` found relative to the playbook's
directory wherever that leads (`../vars/common.yml`, `{{ playbook_dir }}/..`, `vars/{{ ansible_os_family }}.yml`),
and vaulted files decrypted with the vault options `run` takes (`--vault-id`, `--vault-password-file`); a
password that does not decrypt them is exit 19, as elsewhere. No sandbox: lint never touches a host."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from safeapply.cli import main
from safeapply.lint import lint_paths
from safeapply.lint.model import Severity


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))


def _project(root: Path, vars_files: str, files: dict[str, str]) -> Path:
    """An ordinary layout: playbooks/ beside vars/, the play using `{{ app_port }}`."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    pb = root / "playbooks" / "site.yml"
    pb.parent.mkdir(parents=True, exist_ok=True)
    pb.write_text(f"- name: App\n  hosts: all\n  vars_files:\n{vars_files}  tasks:\n    - name: Port\n"
                  "      ansible.builtin.debug:\n        msg: \"{{ app_port }}\"\n")
    return pb


def _undefined(pb: Path) -> list[tuple[Severity, str]]:
    report = lint_paths([pb], use_cache=False, ansible_lint=False)
    return [(f.severity, f.message) for f in report.findings if f.rule == "undefined-variable"]


@pytest.mark.parametrize("entry", ["../vars/common.yml", "'{{ playbook_dir }}/../vars/common.yml'",
                                   "[../vars/missing.yml, ../vars/common.yml]"])
def test_vars_files_outside_the_playbook_folder_define_names(tmp_path: Path, entry: str) -> None:
    pb = _project(tmp_path, f"    - {entry}\n", {"vars/common.yml": "app_port: 8080\n"})
    assert _undefined(pb) == []


def test_a_missing_vars_file_still_blocks(tmp_path: Path) -> None:
    pb = _project(tmp_path, "    - ../vars/common.yml\n", {"vars/other.yml": "app_port: 8080\n"})
    (found,) = _undefined(pb)
    assert found[0] is Severity.BLOCKING and "`app_port`" in found[1]


def test_vars_files_templated_with_facts_count_every_file_they_can_name(tmp_path: Path) -> None:
    pb = _project(tmp_path, "    - \"../vars/{{ ansible_os_family }}.yml\"\n",
                  {"vars/Debian.yml": "app_port: 80\n", "vars/RedHat.yml": "other: 1\n"})
    assert _undefined(pb) == []


def test_vars_files_lint_cannot_name_never_block(tmp_path: Path) -> None:
    pb = _project(tmp_path, "    - \"{{ site_vars_file }}\"\n", {})
    (found,) = _undefined(pb)
    assert found[0] is Severity.WARNING and "site_vars_file" in found[1]


def _vaulted(text: str, password: str) -> str:
    from ansible.parsing.vault import VaultLib, VaultSecret

    return VaultLib([("default", VaultSecret(password.encode()))]).encrypt(text).decode()


def test_lint_takes_the_vault_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    _project(tmp_path, "    - ../vars/secret.yml\n",
             {"vars/secret.yml": _vaulted("app_port: 8080\n", "right-pw")})
    (tmp_path / "right").write_text("right-pw\n")
    (tmp_path / "wrong").write_text("wrong-pw\n")
    monkeypatch.chdir(tmp_path)
    for opts in (["--vault-password-file", "right"], ["--vault-id", f"prod@{tmp_path / 'right'}"]):
        assert main(["lint", "--json", "playbooks/site.yml", *opts]) == 0
        report = json.loads(capsys.readouterr().out)
        assert not [f for f in report["findings"] if f["rule"] == "undefined-variable"], report
    assert main(["lint", "--json", "playbooks/site.yml", "--vault-password-file", "wrong"]) == 19
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("safeapply: error: vault:") and "wrong-pw" not in err[0]



def test_the_lint_cache_is_keyed_on_the_vault_secrets_not_only_their_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A result cached under one password is not reused once the same password file holds another (it could
    hide a wrong password); the same password hits; no cache file holds the password or its plain SHA-256."""
    import hashlib

    project = tmp_path / "project"  # the state dir and the password file outside it, as usual
    project.mkdir()
    _project(project, "    - ../vars/plain.yml\n", {"vars/plain.yml": "app_port: 8080\n"})
    pw = tmp_path / "vault-pass"
    monkeypatch.chdir(project)
    lint = ["lint", "--json", "playbooks/site.yml", "--vault-password-file", str(pw)]
    for password, cached in (("right-pw", False), ("right-pw", True), ("other-pw", False), ("other-pw", True)):
        pw.write_text(password + "\n")
        assert main(lint) == 0
        assert json.loads(capsys.readouterr().out)["cached"] is cached, password
    state = tmp_path / "state"
    key = state / "lint-cache.key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes()) == 32
    secrets = [s.encode() for s in ("right-pw", "right-pw\n", "other-pw", "other-pw\n")]
    secrets += [hashlib.sha256(s).hexdigest().encode() for s in list(secrets)]
    cached_files = [p for p in state.rglob("*") if p.is_file() and p != key]
    assert cached_files
    for p in cached_files:
        data = p.read_bytes()
        assert not [s for s in secrets if s in data], p


def test_ansible_lint_gets_the_vault_passwords_lint_was_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """ansible-lint's syntax check of a playbook with a vaulted vars_file failed without the password given
    to `safeapply lint` (a `lint-incomplete` warning on every vaulted project, and a lint never cached)."""
    _project(tmp_path, "    - ../vars/secret.yml\n", {"vars/secret.yml": _vaulted("app_port: 8080\n", "right-pw")})
    (tmp_path / "right").write_text("right-pw\n")
    monkeypatch.chdir(tmp_path)
    for opts in (["--vault-password-file", "right"], ["--vault-id", f"prod@{tmp_path / 'right'}"]):
        for cached in (False, True):
            assert main(["lint", "--json", "playbooks/site.yml", *opts]) == 0
            report = json.loads(capsys.readouterr().out)
            assert not [f for f in report["findings"] if f["rule"] == "lint-incomplete"], report
            assert report["cached"] is cached
        shutil.rmtree(tmp_path / "state" / "cache", ignore_errors=True)
