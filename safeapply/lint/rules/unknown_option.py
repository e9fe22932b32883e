"""unknown-option: a module option the module never had (`docker_container: memory_limit`).

Ansible fails the task with "Unsupported parameters"; checked against the installed module's argument spec,
plus the options of the modules an action passes them on to (`package` -> apt/dnf/..., `service` -> systemd/...).
"""

from __future__ import annotations

from collections.abc import Iterator

from safeapply.lint.model import Finding, Severity
from safeapply.lint.modules import accepted_options, closest
from safeapply.lint.rules.base import Context, args_of

ID = "unknown-option"
SEVERITY = Severity.BLOCKING
DOC = "A task passes an option its module does not accept; suggests the closest valid option names."


def valid_names(options: dict[str, dict[str, object]]) -> list[str]:
    names = list(options)
    for spec in options.values():
        aliases = spec.get("aliases") or []
        names += [str(a) for a in aliases] if isinstance(aliases, list) else []
    return names


def check(ctx: Context) -> Iterator[Finding]:
    for task, info in ctx.tasks():
        options = accepted_options(info, str(args_of(task).get("use") or ""))
        if options is None or not isinstance(task.args, dict):
            continue
        names = list(dict.fromkeys(valid_names(options)))
        for key in args_of(task):
            if key.startswith("_") or key in names or "{{" in key:
                continue
            near = closest(key, names)
            fix = f"did you mean {' or '.join(f'`{n}`' for n in near)}?" if near else \
                f"valid options: {', '.join(sorted(options))}"
            line = getattr(task.args, "key_lines", {}).get(key, task.line)
            yield Finding(ID, SEVERITY, task.file, line,
                          f"`{info.fqcn}` has no option `{key}`", fix, task_line=task.line)
