"""One lint pass: cache check, our YAML walk, ansible-lint started in parallel, our rules, merge.

The only module that knows the order. Pure data out (a LintReport); nothing printed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from safeapply.lint import cache
from safeapply.lint.model import Connection, Finding, LintReport, Severity

# ansible-lint rules that one of ours reports better (with a fix) at the same file and line.
SUPERSEDES = {
    "unknown-module": {"syntax-check"}, "unknown-option": {"args"}, "invalid-choice": {"args"},
    "jinja-syntax": {"jinja"}, "duplicate-key": {"yaml"}, "shell-instead-of-module": {
        "command-instead-of-module", "no-changed-when"}, "ignore-errors-on-change": {"ignore-errors"},
    "curl-pipe-sh": {"risky-shell-pipe", "command-instead-of-module"},
}


def project_root(paths: list[Path]) -> Path:
    from safeapply.lint.external import find_config

    first = next((p for p in paths if p.exists()), paths[0]).resolve().parent
    config = find_config(first)
    if config is None:
        return first
    return config.parent.parent if config.parent.name == ".config" else config.parent


def lint_paths(paths: list[Path] | list[str], *, profile: str | None = None, strict: bool = False,
               connection: Connection | Mapping[str, Connection] | None = None,
               known_vars: frozenset[str] = frozenset(), use_cache: bool = True,
               ansible_lint: bool = True) -> LintReport:
    """Lint playbooks; `connection` (one, or per host name) is what lockout rules protect."""
    files = [Path(p) for p in paths]
    conns = {"": connection} if isinstance(connection, Connection) else dict(connection or {})
    root = project_root(files)
    options = {"profile": profile, "conns": sorted((h, repr(c)) for h, c in conns.items()),
               "vars": sorted(known_vars), "ansible_lint": ansible_lint}
    k = cache.key(files, root, options) if use_cache else ""
    if k and (hit := cache.load(k)):
        report = LintReport.from_dict(hit)
        report.cached, report.strict = True, strict
        return report
    report = _lint(files, root, profile, conns, known_vars, ansible_lint)
    if k:
        cache.store(k, report.to_dict())
    report.strict = strict
    return report


def _lint(files: list[Path], root: Path, profile: str | None, conns: dict[str, Connection],
          known_vars: frozenset[str], ansible_lint: bool) -> LintReport:
    from safeapply.lint import external, modules
    from safeapply.lint.project import load_project
    from safeapply.lint.quick import needs_mock
    from safeapply.lint.rules import run_rules
    from safeapply.lint.rules.base import Context

    project = load_project(files, root)
    mocks = sorted({t.action for t in project.tasks if t.action and needs_mock(t.action)})
    existing = [f for f in files if f.is_file()]
    # started before Ansible is imported here, so that both run at once
    running = external.start(existing, root, profile, mocks) if ansible_lint and existing else None
    infos = {t.action: modules.resolve(t.action) for t in project.tasks if t.action}
    not_installed = {i.collection for i in infos.values() if not i.installed}
    ctx = Context(project, modules.resolve, conns, known_vars)
    own = project.findings + list(run_rules(ctx))
    theirs = external.collect(running, not_installed) if running else []
    findings = sorted(own + _without_superseded(theirs, own),
                      key=lambda f: (f.file, f.line, f.severity is not Severity.BLOCKING, f.rule))
    return LintReport(findings=findings, files=[project.display(f) for f in files],
                      profile=profile or "production", tools=cache.tool_versions())


def _without_superseded(theirs: list[Finding], own: list[Finding]) -> list[Finding]:
    covered = {(f.file, f.line, tag) for f in own for tag in SUPERSEDES.get(f.rule, ())}
    broken_files = {f.file for f in own if f.rule in ("yaml-invalid", "not-a-playbook", "missing-file")}
    return [f for f in theirs if (f.file, f.line, f.rule.split("[")[0]) not in covered
            and not (f.file in broken_files and f.severity is Severity.BLOCKING)]
