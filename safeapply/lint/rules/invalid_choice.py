"""invalid-choice: a value the option does not accept (`service: state: stop` instead of `stopped`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from safeapply.lint.model import Finding, Severity
from safeapply.lint.modules import closest
from safeapply.lint.rules.base import Context, has_jinja

ID = "invalid-choice"
SEVERITY = Severity.BLOCKING
DOC = "An option is given a value outside its documented choices; suggests the closest valid values."


def _spec_for(options: dict[str, dict[str, Any]], key: str) -> dict[str, Any] | None:
    for name, spec in options.items():
        if key == name or key in (spec.get("aliases") or []):
            return spec
    return None


def _bad_values(value: Any, choices: list[str]) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [str(v) for v in values
            if not isinstance(v, dict | list) and not has_jinja(v) and str(v) not in choices
            and not (isinstance(v, bool) and str(v).lower() in [c.lower() for c in choices])]


def check(ctx: Context) -> Iterator[Finding]:
    for task, info in ctx.tasks():
        if info.options is None or not isinstance(task.args, dict):
            continue
        for key, value in task.args.items():
            spec = _spec_for(info.options, key)
            choices = spec.get("choices") if spec else None
            if not isinstance(choices, list) or not choices or value is None:
                continue
            str_choices = [str(c) for c in choices]
            for bad in _bad_values(value, str_choices):
                near = closest(bad, str_choices)
                fix = f"did you mean {' or '.join(f'`{n}`' for n in near)}?" if near else \
                    f"use one of: {', '.join(str_choices)}"
                line = getattr(task.args, "key_lines", {}).get(key, task.line)
                yield Finding(ID, SEVERITY, task.file, line,
                              f"`{info.fqcn}` option `{key}` does not accept {bad!r} "
                              f"(choices: {', '.join(str_choices)})", fix, task_line=task.line)
