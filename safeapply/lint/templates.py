"""Jinja in a playbook: every template string with its line, parsed by Jinja itself."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import jinja2
from jinja2 import meta, nodes

from safeapply.lint.project import Project, iter_strings

CONDITIONALS = ("when", "changed_when", "failed_when", "until")


@dataclass(frozen=True)
class Template:
    file: str
    line: int
    text: str  # always a full template: bare conditionals are wrapped in {{ }}
    loop_vars: tuple[str, ...] = ()
    guarded: frozenset[str] = frozenset()  # names an enclosing `when:` tests with `is defined`/`default()`


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])


def parse(text: str) -> nodes.Template:
    """Raise jinja2.TemplateSyntaxError on bad syntax."""
    return _env().parse(text)


def _root(node: nodes.Node) -> str | None:
    """`foo` for foo, foo.bar, foo['x'].y: Ansible's undefined chains through attribute and item access."""
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        node = node.node
    return node.name if isinstance(node, nodes.Name) else None


def guarded_names(ast: nodes.Template) -> set[str]:
    """Names read under `| default(...)` or tested with `is defined`/`is undefined`/`is none`."""
    found = {_root(n.node) for n in ast.find_all(nodes.Filter) if n.name in ("default", "d") and n.node}
    found |= {_root(n.node) for n in ast.find_all(nodes.Test) if n.name in ("defined", "undefined", "none")}
    return {n for n in found if n}


def undeclared(ast: nodes.Template) -> set[str]:
    """Free names, less those guarded by `| default(...)` or `is defined`."""
    return set(meta.find_undeclared_variables(ast)) - guarded_names(ast)


@cache
def condition_guards(conditions: tuple[str, ...]) -> frozenset[str]:
    """Names that `when:` conditions guard: the task (or block) is skipped when they are not defined."""
    out: set[str] = set()
    for cond in conditions:
        try:
            out |= guarded_names(parse(cond if "{{" in cond else "{{ " + cond + " }}"))
        except jinja2.TemplateSyntaxError:
            continue
    return frozenset(out)


def _task_templates(file: str, data: Any, loop_var: str, guarded: frozenset[str] = frozenset()
                    ) -> Iterator[Template]:
    lines = getattr(data, "key_lines", {})
    for key, value in data.items():
        line = lines.get(key, getattr(data, "line", 1))
        if key in CONDITIONALS:
            for cond in value if isinstance(value, list) else [value]:
                if isinstance(cond, str) and cond.strip():
                    text = cond if "{{" in cond else "{{ " + cond + " }}"
                    yield Template(file, line, text, (loop_var,), guarded)
            continue
        if isinstance(value, dict) and hasattr(value, "key_lines"):
            yield from _task_templates(file, value, loop_var, guarded)
            continue
        for s in iter_strings(value):
            if "{{" in s or "{%" in s:
                yield Template(file, line, s, (loop_var,), guarded)


def templates(project: Project) -> Iterator[Template]:
    for task in project.tasks:
        control = task.data.get("loop_control")
        loop_var = control.get("loop_var", "item") if isinstance(control, dict) else "item"
        guarded = condition_guards(task.scope.conditions) if task.scope else frozenset()
        yield from _task_templates(task.file, task.data, str(loop_var), guarded)
    for file, play in project.plays:
        for key in ("vars", "hosts", "name"):
            if key in play:
                yield from _play_key(file, play, key)


def _play_key(file: str, play: Any, key: str) -> Iterator[Template]:
    line = play.key_lines.get(key, play.line)
    for s in iter_strings(play[key]):
        if "{{" in s or "{%" in s:
            yield Template(file, line, s)


def _literals(data: Any, out: dict[str, str]) -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(k, str) and isinstance(v, str | int) and not isinstance(v, bool):
                out.setdefault(k, str(v))


def literal_vars(project: Project) -> dict[str, str]:
    """Plain string values of play vars, role defaults/vars and group_vars: enough to resolve a path."""
    from safeapply.lint.loader import load_yaml

    out: dict[str, str] = {}
    for _file, play in project.plays:
        _literals(play.get("vars"), out)
    files = [r / sub / "main.yml" for r in project.roles for sub in ("vars", "defaults")]
    for base in {project.root, *(p.parent for p in project.files)}:
        files += sorted((base / "group_vars").glob("all*")) + sorted((base / "group_vars").glob("*/*.yml"))
        files += sorted((base / "group_vars").glob("*.yml"))
    for f in files:
        if f.is_file():
            _literals(load_yaml(f, str(f)).data, out)
    return out


def render_literal(text: str, variables: dict[str, str], task_vars: Any = None) -> str | None:
    """`text` with its variables substituted from literal values (None when any is unknown or not literal)."""
    scope = dict(variables)
    _literals(task_vars, scope)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for _ in range(5):
        if "{{" not in text and "{%" not in text:
            return text
        try:
            text = env.from_string(text).render(scope)
        except (jinja2.TemplateError, TypeError, ValueError):
            return None
    return None
