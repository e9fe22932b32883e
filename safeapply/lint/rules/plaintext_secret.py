"""plaintext-secret: a password, token or key given to a task without `no_log: true`.

Ansible prints module arguments in verbose output, callbacks and run records; a literal secret also sits in
the repository. Warning: fix with Ansible Vault and `no_log: true`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from safeapply.lint.model import Finding, Severity
from safeapply.lint.rules.base import Context, args_of, truthy

ID = "plaintext-secret"
SEVERITY = Severity.WARNING
DOC = "A secret-looking option (password, token, api_key, secret, private_key) on a task without no_log."

SECRET_KEY = re.compile(r"(pass(word|wd|phrase)?|secret|token|api_?key|private_?key|credentials?)$", re.I)
_NOT_SECRET = re.compile(r"(_file|_path|_length|_lock|_expire\w*|update_password|_min|_max)$", re.I)


def check(ctx: Context) -> Iterator[Finding]:
    for task in ctx.project.tasks:
        if truthy(task.data.get("no_log")):
            continue
        for key, value in args_of(task).items():
            if not SECRET_KEY.search(key) or _NOT_SECRET.search(key) or value in (None, "", False):
                continue
            literal = isinstance(value, str) and "{{" not in value and not value.startswith("$ANSIBLE_VAULT")
            line = getattr(task.args, "key_lines", {}).get(key, task.line)
            what = "a plain-text secret" if literal else "a secret"
            yield Finding(ID, SEVERITY, task.file, line, f"option `{key}` passes {what} without `no_log: true`",
                          "add `no_log: true` to the task" + (" and move the value to Ansible Vault"
                                                              if literal else ""))
