"""jinja-syntax: a template Jinja cannot parse. Ansible fails the task when it renders it."""

from __future__ import annotations

from collections.abc import Iterator

import jinja2

from safeapply.lint.model import Finding, Severity
from safeapply.lint.rules.base import Context
from safeapply.lint.templates import parse, templates

ID = "jinja-syntax"
SEVERITY = Severity.BLOCKING
DOC = "A Jinja expression or statement has a syntax error (unclosed braces, two names without an operator)."


def check(ctx: Context) -> Iterator[Finding]:
    for tpl in templates(ctx.project):
        try:
            parse(tpl.text)
        except jinja2.TemplateSyntaxError as e:
            yield Finding(ID, SEVERITY, tpl.file, tpl.line,
                          f"Jinja syntax error in {tpl.text.strip()[:80]!r}: {e.message}",
                          "fix the expression: quote strings, join names with an operator or filter (|), "
                          "close every {{ }} and {% %}")
