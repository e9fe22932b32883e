"""unknown-module: the task names a module or action that is not installed.

Ansible stops the whole play at the first task whose module it cannot find, so this blocks. A module of a
collection that is not installed here cannot be validated: that is a warning, not a verdict on the playbook.
"""

from __future__ import annotations

from collections.abc import Iterator

from safeapply.lint.model import Finding, Severity
from safeapply.lint.modules import closest, known_modules
from safeapply.lint.rules.base import Context

ID = "unknown-module"
SEVERITY = Severity.BLOCKING
DOC = "A task uses a module/action that does not exist (typo, invented name); suggests the closest names."


def check(ctx: Context) -> Iterator[Finding]:
    for task in ctx.project.tasks:
        if not task.action:
            yield Finding(ID, SEVERITY, task.file, task.line, "no module or action found in this task",
                          "add the module to run, e.g. `ansible.builtin.debug: msg=...`")
            continue
        info = ctx.resolve(task.action)
        if info.fqcn:
            continue
        line = task.key_line(task.action)
        if info.removed:
            yield Finding(ID, SEVERITY, task.file, line, f"`{task.action}` was removed from Ansible: {info.removed}",
                          "use the replacement Ansible names above")
            continue
        if not info.installed:
            yield Finding(ID, Severity.WARNING, task.file, line,
                          f"cannot validate `{task.action}`: collection {info.collection} is not installed",
                          f"install it (`ansible-galaxy collection install {info.collection}`) to check "
                          "module names and options")
            continue
        pool = known_modules() if "." in task.action else tuple(m for m in known_modules() if "." not in m)
        near = closest(task.action, pool)
        fix = f"did you mean {' or '.join(f'`{n}`' for n in near)}?" if near else "check the module name"
        yield Finding(ID, SEVERITY, task.file, line, f"unknown module or action `{task.action}`", fix)
