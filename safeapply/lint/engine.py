"""One lint pass: ansible-lint started first (or its cached result), our YAML walk and rules meanwhile, merge.

The only module that knows the order. Pure data out (a LintReport); nothing printed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safeapply.ansible_context import vault_options, vault_secrets
from safeapply.lint import cache, external
from safeapply.lint.model import Connection, Finding, LintReport, Severity

if TYPE_CHECKING:
    from safeapply.lint.project import Project

# ansible-lint rules that one of ours reports better (with a fix) at the same file and line.
SUPERSEDES = {
    "unknown-module": {"syntax-check"}, "unknown-option": {"args"}, "invalid-choice": {"args"},
    "jinja-syntax": {"jinja"}, "duplicate-key": {"yaml"}, "shell-instead-of-module": {
        "command-instead-of-module", "no-changed-when"}, "ignore-errors-on-change": {"ignore-errors"},
    "curl-pipe-sh": {"risky-shell-pipe", "command-instead-of-module"},
}


TOOL_RULES = frozenset({external.INCOMPLETE, "ansible-lint"})  # findings about the tools: never cached


def project_root(paths: list[Path]) -> Path:
    first = next((p for p in paths if p.exists()), paths[0]).resolve().parent
    config = external.find_config(first)
    if config is None:
        return first
    return config.parent.parent if config.parent.name == ".config" else config.parent


@dataclass
class EarlyLint:
    """ansible-lint, started (or found in the cache) as early as possible; `lint_paths` finishes the job.

    ansible-lint's findings depend on the files, profile and tools only, not on the inventory: they are
    cached apart, so a caller that does not know the hosts yet can still start (or skip) the subprocess.
    """

    files: list[Path]
    root: Path
    profile: str | None
    base_key: str  # "" when the cache is not used
    ansible_lint: bool
    running: external.Running | None = None
    cached: list[Finding] | None = None  # ansible-lint's findings from the cache
    project: Project | None = None
    collected: bool = False

    @property
    def external_key(self) -> str:
        return _derive(self.base_key, {"part": "ansible-lint"}) if self.base_key else ""

    def stop(self) -> None:
        """The caller gives up (any thread): ansible-lint is killed, a pending `lint_paths` returns soon."""
        if self.running is not None:
            external.stop(self.running)

    def close(self) -> None:
        if self.running is not None and not self.collected:
            external.discard(self.running)
        self.running = None


def start(paths: list[Path] | list[str], *, profile: str | None = None, use_cache: bool = True,
          ansible_lint: bool = True) -> EarlyLint:
    """Start ansible-lint now unless its result for this content is cached. No Ansible import."""
    files = [Path(p) for p in paths]
    root = project_root(files)
    # ansible-lint reads the ansible.cfg Ansible finds from here (roles_path...): another directory may mean another
    # and another vault password (same files, other content; -J) another result: an HMAC of the secrets, never them
    vault = vault_options()
    secrets = cache.secrets_digest(vault_secrets()) if vault and use_cache else ""
    where = {"cwd": str(Path.cwd()), "ansible_config": os.environ.get("ANSIBLE_CONFIG", ""), "vault": vault,
             "vault_secrets": secrets}
    base = cache.key(files, root, {"profile": profile, **where}) if use_cache else ""
    early = EarlyLint(files, root, profile, base, ansible_lint)
    existing = [f for f in files if f.is_file()]
    if not ansible_lint or not existing:
        return early
    if special := cache.special_files(root):  # Ansible's syntax check would wait on a FIFO forever
        early.cached = [Finding("not-a-file", Severity.BLOCKING, str(p.relative_to(root)), 0,
                                "a FIFO or device where Ansible may read a file: it would wait on it forever "
                                "(ansible-lint and the syntax check did not run)",
                                "remove it, or replace it with a regular file") for p in special]
        return early
    if base and (hit := cache.load(early.external_key)) is not None:
        early.cached = [Finding.from_dict(f) for f in hit.get("findings", [])]
        return early
    from safeapply.lint.project import load_project
    from safeapply.lint.quick import needs_mock

    early.project = load_project(files, root)
    mocks = sorted({t.action for t in early.project.tasks if t.action and needs_mock(t.action)})
    early.running = external.start(existing, root, profile, mocks)
    return early


def lint_paths(paths: list[Path] | list[str], *, profile: str | None = None, strict: bool = False,
               connection: Connection | Mapping[str, Connection] | None = None,
               known_vars: frozenset[str] = frozenset(), use_cache: bool = True,
               ansible_lint: bool = True, early: EarlyLint | None = None,
               strict_tools: bool = False, accept: Sequence[str] = ()) -> LintReport:
    """Lint playbooks; `connection` (one, or per host name) is what lockout rules protect.

    `early` is what `start()` gave for the same paths and options (ansible-lint already running).
    `strict_tools`: a part of the lint that did not run (`lint-incomplete`) blocks instead of warning
    (`strict` blocks on every warning, that one included). `# noqa` and .ansible-lint's skip_list/warn_list
    apply to safeapply's rules too; a blocking finding passes only when `accept` (RULE[:FILE:LINE]) names it."""
    from safeapply.lint import suppress

    early = early or start(paths, profile=profile, use_cache=use_cache, ansible_lint=ansible_lint)
    try:
        report = _finish(early, strict, connection, known_vars)
    finally:
        early.close()  # ansible-lint never collected (a cache hit, or an error on the way): end it
    if strict_tools:
        report.findings = [replace(f, severity=Severity.BLOCKING) if f.rule in TOOL_RULES else f
                           for f in report.findings]
    return suppress.apply(report, early.root, accept)


def _finish(early: EarlyLint, strict: bool, connection: Connection | Mapping[str, Connection] | None,
            known_vars: frozenset[str]) -> LintReport:
    conns = {"": connection} if isinstance(connection, Connection) else dict(connection or {})
    options = {"conns": sorted((h, repr(c)) for h, c in conns.items()), "vars": sorted(known_vars),
               "ansible_lint": early.ansible_lint}
    k = _derive(early.base_key, options) if early.base_key else ""
    if k and (hit := cache.load(k)):
        report = LintReport.from_dict(hit)
        report.cached, report.strict = True, strict
        return report
    report = _lint(early, conns, known_vars)
    if k and not any(f.rule in TOOL_RULES for f in report.findings):  # never cache a tool failure
        cache.store(k, report.to_dict(), _outside_files(early))
    report.strict = strict
    return report


def _outside_files(early: EarlyLint) -> list[Path]:
    """Files lint read that the key's tree hash does not cover: roles found through `roles_path` or in
    collections, task files imported from outside the project, and ansible.cfg when it lives elsewhere."""
    from ansible import constants as C

    project, root = early.project, early.root.resolve()
    if project is None:
        return []
    files = {f for f in project.files if not f.resolve().is_relative_to(root)}
    for role in project.roles:
        if not role.resolve().is_relative_to(root):
            files.update(p for p in sorted(role.rglob("*"))[:2000] if p.is_file())
    if C.CONFIG_FILE and not Path(C.CONFIG_FILE).resolve().is_relative_to(root):
        files.add(Path(C.CONFIG_FILE))
    return sorted(files)


def _derive(base: str, options: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([base, options], sort_keys=True).encode()).hexdigest()


def _lint(early: EarlyLint, conns: dict[str, Connection], known_vars: frozenset[str]) -> LintReport:
    from safeapply.lint import modules
    from safeapply.lint.project import load_project
    from safeapply.lint.rules import run_rules
    from safeapply.lint.rules.base import Context

    files = early.files
    project = early.project = early.project or load_project(files, early.root)
    modules.add_project_plugins(sorted({t.scope.play_dir for t in project.tasks if t.scope}
                                       | {f.parent for f in files} | set(project.roles)))
    infos = {t.action: modules.resolve(t.action) for t in project.tasks if t.action}
    not_installed = {i.collection for i in infos.values() if not i.installed}
    ctx = Context(project, modules.resolve, conns, known_vars)
    own = project.findings + list(run_rules(ctx))
    if early.running is not None and any(f.rule == "yaml-invalid" for f in own):
        external.stop(early.running)  # it fails on the same file anyway; on a YAML bomb it would spin for long
    theirs = _theirs(early, not_installed)
    findings = sorted(own + _without_superseded(theirs, own),
                      key=lambda f: (f.file, f.line, f.severity is not Severity.BLOCKING, f.rule))
    return LintReport(findings=findings, files=[project.display(f) for f in files],
                      profile=early.profile or "production", tools=cache.tool_versions())


def _theirs(early: EarlyLint, not_installed: set[str]) -> list[Finding]:
    if early.cached is not None:
        return early.cached
    if early.running is None:
        return []
    early.collected = True
    theirs = external.collect(early.running, not_installed)
    if early.external_key and not any(f.rule in TOOL_RULES for f in theirs):  # never cache a tool failure
        cache.store(early.external_key, {"findings": [f.to_dict() for f in theirs]}, _outside_files(early))
    return theirs


def _without_superseded(theirs: list[Finding], own: list[Finding]) -> list[Finding]:
    covered = {(f.file, line, tag) for f in own for tag in SUPERSEDES.get(f.rule, ())
               for line in (f.line, f.task_line) if line}
    broken_files = {f.file for f in own if f.rule in ("yaml-invalid", "not-a-playbook", "missing-file")}
    return [f for f in theirs if (f.file, f.line, f.rule.split("[")[0]) not in covered
            and not (f.file in broken_files and f.severity is Severity.BLOCKING)]
