"""unknown-filter: a Jinja filter or test that Ansible does not have.

Ansible fails the task when it renders the template, often mid-apply after earlier tasks changed the host.
Names are looked up with Ansible's own filter and test plugin loaders (Jinja's builtins, ansible.builtin
and every installed collection, with routing). A filter that was removed is named with where it went (an
installed collection's filter of that name); a test used as a filter (`result | failed`) is named as such.
A name from a collection that is not installed is a warning: it cannot be checked here. Blocks.
"""

from __future__ import annotations

from collections.abc import Iterator

import jinja2
from jinja2 import nodes

from safeapply.lint import modules
from safeapply.lint.model import Finding, Severity
from safeapply.lint.rules.base import Context
from safeapply.lint.templates import parse, templates

ID = "unknown-filter"
SEVERITY = Severity.BLOCKING
DOC = "A Jinja filter/test Ansible does not know (removed, misspelt, or a test written as a filter)."

_TEST_ARG = {"select": 0, "reject": 0, "selectattr": 1, "rejectattr": 1}  # which argument names a test


def _const(args: list[nodes.Expr], pos: int) -> str | None:
    arg = args[pos] if len(args) > pos else None
    return arg.value if isinstance(arg, nodes.Const) and isinstance(arg.value, str) else None


def used(ast: nodes.Template) -> Iterator[tuple[str, str]]:
    """(kind, name) of every filter and test a template uses, including `select('test')`, `map('filter')`."""
    for f in ast.find_all(nodes.Filter):
        yield "filter", f.name
        pos = _TEST_ARG.get(f.name)
        test = _const(f.args, pos) if pos is not None else None
        if test:
            yield "test", test
        mapped = _const(f.args, 0) if f.name == "map" else None
        if mapped:
            yield "filter", mapped
    for t in ast.find_all(nodes.Test):
        yield "test", t.name


def problem(kind: str, name: str) -> tuple[Severity, str, str] | None:
    """None when Ansible knows the name; else severity, message and fix."""
    if modules.jinja_plugin(kind, name):
        return None
    collection = name.rsplit(".", 1)[0] if name.count(".") >= 2 else ""
    if collection and not modules.collection_installed(collection):
        return (Severity.WARNING, f"cannot validate the {kind} `{name}`: collection {collection} is not installed",
                f"install it (`ansible-galaxy collection install {collection}`)")
    other = "test" if kind == "filter" else "filter"
    short = name.rsplit(".", 1)[-1]
    if modules.jinja_plugin(other, name):
        how = f"`value is {short}`" if kind == "filter" else f"`value | {short}`"
        return SEVERITY, f"`{name}` is a Jinja {other}, not a {kind}: Ansible fails when it renders this", \
            f"write it as a {other}: {how}"
    moved = modules.jinja_plugin_elsewhere(kind, name)
    if moved:
        return SEVERITY, f"there is no {kind} `{name}` any more: it was removed from where Ansible looks for it", \
            f"use {' or '.join(f'`{m}`' for m in moved)}"
    near = modules.closest(short, modules.jinja_plugin_names(kind))
    near_other = [n for n in modules.closest(short, modules.jinja_plugin_names(other)) if n not in near]
    hints = [f"the {kind} `{n}`" for n in near] + [f"the {other} `{n}`" for n in near_other[:1]]
    fix = f"did you mean {' or '.join(hints)}?" if hints else f"check the {kind} name"
    return SEVERITY, f"unknown Jinja {kind} `{name}`: Ansible fails when it renders this", fix


def check(ctx: Context) -> Iterator[Finding]:
    reported: set[tuple[str, int, str, str]] = set()
    for tpl in templates(ctx.project):
        try:
            ast = parse(tpl.text)
        except jinja2.TemplateSyntaxError:
            continue  # jinja-syntax reports it
        for kind, name in used(ast):
            key = (tpl.file, tpl.line, kind, name)
            if key in reported:
                continue
            reported.add(key)
            found = problem(kind, name)
            if found:
                yield Finding(ID, found[0], tpl.file, tpl.line, found[1], found[2])
