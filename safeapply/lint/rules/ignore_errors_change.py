"""ignore-errors-on-change: `ignore_errors: true` on a task that changes the host.

A failed change that is ignored leaves the host half-configured while the run reports success. Warning.
"""

from __future__ import annotations

from collections.abc import Iterator

from safeapply.lint.model import Finding, Severity
from safeapply.lint.rules.base import Context, truthy

ID = "ignore-errors-on-change"
SEVERITY = Severity.WARNING
DOC = "ignore_errors on a state-changing task hides a failed change; use failed_when for expected failures."

READ_ONLY = frozenset(str.split("""
debug assert fail stat ping setup gather_facts slurp find getent wait_for wait_for_connection pause
set_fact include_vars uri get_url package_facts service_facts command shell meta fetch
"""))


def check(ctx: Context) -> Iterator[Finding]:
    for task, info in ctx.tasks():
        if not truthy(task.data.get("ignore_errors")):
            continue
        short = info.short
        if short.endswith(("_info", "_facts")) or (short in READ_ONLY and short not in ("command", "shell")):
            continue
        if short in ("command", "shell") and str(task.data.get("changed_when")).lower() == "false":
            continue
        yield Finding(ID, SEVERITY, task.file, task.line,
                      f"`ignore_errors: true` on `{task.action}`, which changes the host",
                      "remove it, or use `failed_when:` with the condition that really means failure")
