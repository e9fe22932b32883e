"""controller-lookup: a template that runs a command, fetches a URL or reads the controller's environment.

`lookup('pipe', ...)`, `lines` and `url` (also as `query`/`q` and `with_pipe:`-style loops) run on the
controller when Ansible renders the template: as the user safeapply runs as (root under a systemd unit), with
the controller's files and network — not on the host the plan and the rollback protect. safeapply never runs
lookups itself before the gates (the plan shows such values *unresolved*), but the apply does. A lookup whose
name is itself a template cannot be checked and blocks too; `--accept controller-lookup:FILE:LINE` accepts one
that is meant. `env` runs nothing but reads the controller's environment, which differs under cron and systemd
from a terminal's: a warning.
"""

from __future__ import annotations

from collections.abc import Iterator

import jinja2
from jinja2 import nodes

from safeapply.lint.model import Finding, Severity
from safeapply.lint.rules.base import Context
from safeapply.lint.templates import parse, templates

ID = "controller-lookup"
SEVERITY = Severity.BLOCKING
DOC = "A lookup that runs a command, fetches a URL or reads the controller's environment when Ansible renders it."

RISKY = ("pipe", "lines", "url", "env")
WARN_ONLY = ("env",)
_CALLS = ("lookup", "query", "q")
_FIX = ("compute the value on the host (a task with `register:`), or pass it in with -e; if the controller "
        "is meant to run it, accept it: --accept controller-lookup:FILE:LINE")


def lookups(ast: nodes.Template) -> Iterator[str]:
    """The plugin name of every lookup()/query()/q() call ("" when the name is not a constant)."""
    for call in ast.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name in _CALLS and call.args:
            first = call.args[0]
            yield first.value if isinstance(first, nodes.Const) and isinstance(first.value, str) else ""


def risky(name: str) -> bool:
    return not name or name.rsplit(".", 1)[-1] in RISKY


def severity(name: str) -> Severity:
    return Severity.WARNING if name.rsplit(".", 1)[-1] in WARN_ONLY else SEVERITY


def check(ctx: Context) -> Iterator[Finding]:
    for task in ctx.project.tasks:
        for key in task.data:
            loop = str(key)[len("with_"):] if str(key).startswith("with_") else None
            if loop and loop.rsplit(".", 1)[-1] in RISKY:
                yield Finding(ID, severity(loop), task.file, task.key_line(key),
                              f"`{key}:` runs the `{loop}` lookup on the controller", _FIX)
    reported: set[tuple[str, int, str]] = set()
    for tpl in templates(ctx.project):
        try:
            ast = parse(tpl.text)
        except jinja2.TemplateSyntaxError:
            continue  # jinja-syntax reports it
        for name in lookups(ast):
            if not risky(name) or (tpl.file, tpl.line, name) in reported:
                continue
            reported.add((tpl.file, tpl.line, name))
            what = f"the `{name}` lookup" if name else "a lookup whose name is a template"
            yield Finding(ID, severity(name), tpl.file, tpl.line, f"{what} runs on the controller when Ansible "
                          "renders this (a command, a URL or the controller's environment)", _FIX)
