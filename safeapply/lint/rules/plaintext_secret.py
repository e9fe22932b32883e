"""plaintext-secret: a password, token or key written where Ansible logs it, without `no_log: true`.

Module arguments of a task without `no_log` appear in verbose output, callbacks and run records; a literal
secret in play or task `vars:` also sits in the repository. Found by name (password, token, api_key...) and
by the shape of the value (AWS/GitHub/GitLab/Slack tokens, private keys). The finding names the variable
and never repeats the value. Warning: fix with Ansible Vault and `no_log: true`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from safeapply.lint.model import Finding, Severity
from safeapply.lint.rules.base import Context, args_of, has_jinja, truthy

ID = "plaintext-secret"
SEVERITY = Severity.WARNING
DOC = "A secret (by name or by value shape) in task args or play/task vars without no_log; never echoed."

SECRET_KEY = re.compile(r"(pass(word|wd|phrase)?|secret|token|api_?key|private_?key|credentials?)$", re.I)
_NOT_SECRET = re.compile(r"(_file|_path|_length|_lock|_expire\w*|update_password|_min|_max|_url|_dir|_user"
                         r"|_name|_enabled|_method)$", re.I)
SECRET_VALUE = re.compile(
    r"^(AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{32,}|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\..+)$"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----")


def _literal(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and not has_jinja(value) and \
        not value.startswith("$ANSIBLE_VAULT")


def secret_kind(key: str, value: Any) -> str:
    """'name' or 'value' when this looks like a secret ('' otherwise)."""
    if isinstance(value, str) and SECRET_VALUE.search(value.strip()):
        return "value"
    if SECRET_KEY.search(key) and not _NOT_SECRET.search(key) and value not in (None, "", False):
        return "name"
    return ""


def _vars_findings(file: str, owner: Any, fix_where: str) -> Iterator[Finding]:
    block = owner.get("vars") if isinstance(owner, dict) else None
    if not isinstance(block, dict) or truthy(owner.get("no_log")):
        return
    lines = getattr(block, "key_lines", {})
    for key, value in block.items():
        kind = secret_kind(str(key), value)
        if kind and _literal(value):
            what = "looks like a token or key" if kind == "value" else "is a secret"
            yield Finding(ID, SEVERITY, file, lines.get(key, getattr(block, "line", 0)),
                          f"variable `{key}` {what} written in plain text in {fix_where} `vars:`",
                          f"move `{key}` to an Ansible Vault file (`ansible-vault encrypt_string`) and set "
                          "`no_log: true` on the tasks that use it")


def check(ctx: Context) -> Iterator[Finding]:
    for file, play in ctx.project.plays:
        yield from _vars_findings(file, play, "the play's")
    for task in ctx.project.tasks:
        if truthy(task.data.get("no_log")):
            continue
        yield from _vars_findings(task.file, task.data, "the task's")
        for key, value in args_of(task).items():
            kind = secret_kind(str(key), value)
            if not kind:
                continue
            line = getattr(task.args, "key_lines", {}).get(key, task.line)
            what = "a plain-text secret" if _literal(value) else "a secret"
            yield Finding(ID, SEVERITY, task.file, line, f"option `{key}` passes {what} without `no_log: true`",
                          "add `no_log: true` to the task" + (" and move the value to Ansible Vault"
                                                              if _literal(value) else ""))
