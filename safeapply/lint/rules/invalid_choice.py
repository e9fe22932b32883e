"""invalid-choice: a value the option does not accept (`service: state: stop` instead of `stopped`).

Checked with Ansible's own argument validator (`ArgumentSpecValidator`) on the option's documented type and
choices, so its coercions apply: a YAML boolean on a yes/no choice (`apt: upgrade: yes`) is accepted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from safeapply.lint.model import Finding, Severity
from safeapply.lint.modules import accepted_options, closest
from safeapply.lint.rules.base import Context, args_of, has_jinja

ID = "invalid-choice"
SEVERITY = Severity.BLOCKING
DOC = "An option is given a value outside its documented choices; suggests the closest valid values."

_SPEC_KEYS = ("type", "choices", "elements")


def _spec_for(options: dict[str, dict[str, Any]], key: str) -> dict[str, Any] | None:
    for name, spec in options.items():
        if key == name or key in (spec.get("aliases") or []):
            return spec
    return None


def _rejected(key: str, spec: dict[str, Any], value: Any) -> bool:
    """Does Ansible's own validator reject this value for this option (type coercion, then choices)?"""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    one = {k: spec[k] for k in _SPEC_KEYS if k in spec}
    if one.get("type") not in (None, "str", "list", "raw", "bool", "int"):
        one.pop("type", None)
    return bool(ArgumentSpecValidator({key: one}).validate({key: value}).error_messages)


def _bad_values(key: str, spec: dict[str, Any], value: Any) -> list[str]:
    if isinstance(value, list):  # each element on its own, as the option's `elements` type
        spec = {"type": spec.get("elements") or "str", "choices": spec["choices"]}
    values = value if isinstance(value, list) else [value]
    return [str(v) for v in values if not isinstance(v, dict | list) and not has_jinja(v)
            and _rejected(key, spec, v)]


def check(ctx: Context) -> Iterator[Finding]:
    for task, info in ctx.tasks():
        options = accepted_options(info, str(args_of(task).get("use") or ""))
        if options is None or not isinstance(task.args, dict):
            continue
        for key, value in task.args.items():
            spec = _spec_for(options, key)
            choices = spec.get("choices") if spec else None
            if spec is None or not isinstance(choices, list) or not choices or value is None:
                continue
            str_choices = [str(c) for c in choices]
            for bad in _bad_values(key, spec, value):
                near = closest(bad, str_choices)
                fix = f"did you mean {' or '.join(f'`{n}`' for n in near)}?" if near else \
                    f"use one of: {', '.join(str_choices)}"
                line = getattr(task.args, "key_lines", {}).get(key, task.line)
                yield Finding(ID, SEVERITY, task.file, line,
                              f"`{info.fqcn}` option `{key}` does not accept {bad!r} "
                              f"(choices: {', '.join(str_choices)})", fix, task_line=task.line)
