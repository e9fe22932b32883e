"""unvalidated-critical-file: sshd_config or sudoers written without `validate:`.

One typo in either file locks every operator out (sshd will not start, sudo refuses to run). Blocks.
"""

from __future__ import annotations

from collections.abc import Iterator

from safeapply.lint.model import Finding, Severity
from safeapply.lint.rules.base import Context, args_of

ID = "unvalidated-critical-file"
SEVERITY = Severity.BLOCKING
DOC = "sshd_config/sudoers changed without validate: (`sshd -t -f %s`, `visudo -cf %s`)."

WRITERS = ("copy", "template", "lineinfile", "blockinfile", "replace")


def validator(path: str) -> str | None:
    if path.startswith("/etc/ssh/sshd_config"):
        return "/usr/sbin/sshd -t -f %s"
    if path.startswith("/etc/sudoers"):
        return "/usr/sbin/visudo -cf %s"
    return None


def check(ctx: Context) -> Iterator[Finding]:
    for task, _info in ctx.tasks(*WRITERS):
        args = args_of(task)
        path = str(args.get("dest") or args.get("path") or "")
        command = validator(path)
        if command and not args.get("validate"):
            yield Finding(ID, SEVERITY, task.file, task.key_line(task.action),
                          f"{path} is written without `validate:`: a syntax error would lock you out",
                          f"add `validate: {command}`")
