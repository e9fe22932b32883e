"""unvalidated-critical-file: sshd_config or sudoers written without `validate:`.

One typo in sshd_config stops sshd from starting: that blocks. A broken sudoers stops `sudo`, which matters
when the inventory logs in as a user who needs sudo (safeapply's own rollback runs through it): blocking for
a non-root login (per host, or the play's `remote_user`), a warning with a root login or when the login user
is not known (`safeapply lint` without `--ssh-user`).
"""

from __future__ import annotations

from collections.abc import Iterator

from safeapply.lint.model import Finding, Severity
from safeapply.lint.project import Task
from safeapply.lint.rules.base import Context, args_of

ID = "unvalidated-critical-file"
SEVERITY = Severity.BLOCKING
DOC = ("sshd_config/sudoers changed without validate: (`sshd -t -f %s`, `visudo -cf %s`); sudoers blocks only "
       "when the login user needs sudo (non-root), else warns.")

WRITERS = ("copy", "template", "lineinfile", "blockinfile", "replace")


def validator(path: str) -> str | None:
    if path.startswith("/etc/ssh/sshd_config"):
        return "/usr/sbin/sshd -t -f %s"
    if path.startswith("/etc/sudoers"):
        return "/usr/sbin/visudo -cf %s"
    return None


def sudo_users(ctx: Context, task: Task) -> tuple[list[str], bool]:
    """Non-root login users (host: user) that depend on sudo, and whether the login user is known at all."""
    users = {h: c.user for h, c in ctx.connections.items() if c.user}
    if not users and task.scope and task.scope.remote_user and "{{" not in task.scope.remote_user:
        users = {"": task.scope.remote_user}
    needy = sorted(f"{u} (host {h})" if h else u for h, u in users.items() if u != "root")
    return needy, bool(users)


def check(ctx: Context) -> Iterator[Finding]:
    for task, _info in ctx.tasks(*WRITERS):
        args = args_of(task)
        path = str(args.get("dest") or args.get("path") or "")
        command = validator(path)
        if not command or args.get("validate"):
            continue
        line = task.key_line(task.action)
        if path.startswith("/etc/ssh/"):
            yield Finding(ID, SEVERITY, task.file, line,
                          f"{path} is written without `validate:`: a syntax error stops sshd and locks you out",
                          f"add `validate: {command}`")
            continue
        needy, known = sudo_users(ctx, task)
        if needy:
            yield Finding(ID, SEVERITY, task.file, line,
                          f"{path} is written without `validate:` and the inventory logs in as "
                          f"{', '.join(needy[:3])}, who needs sudo: a syntax error stops sudo, the rest of the "
                          "play and the rollback", f"add `validate: {command}`")
            continue
        who = "root logs in, so a broken sudoers does not lock you out" if known else \
            "the login user is not known (this blocks for a non-root login; pass --ssh-user)"
        yield Finding(ID, Severity.WARNING, task.file, line,
                      f"{path} is written without `validate:` ({who})", f"add `validate: {command}`")
