"""`safeapply lint`: syntax check + ansible-lint + safeapply's own rules, cached by content."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from safeapply.cli.ansible_opts import VAULT_OPTIONS, ansible_options
from safeapply.cli.app import AcceptOpt, JsonOpt, app
from safeapply.cli.output import console, emit_json, err_console
from safeapply.errors import ExitCode, UsageError
from safeapply.lint.model import Connection, LintReport, Severity


class Format(StrEnum):
    human = "human"
    json = "json"
    sarif = "sarif"


@app.command()
@ansible_options(only=VAULT_OPTIONS)
def lint(
    playbooks: Annotated[list[Path], typer.Argument(help="Playbook file(s) to check.", show_default=False)],
    profile: Annotated[str | None, typer.Option(
        help="ansible-lint profile (min, basic, moderate, safety, shared, production). Default: the "
        "project's .ansible-lint `profile:`, else production.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail too (exit 16), among them a part of the "
                                         "lint that did not run (lint-incomplete: ansible-lint or the syntax "
                                         "check).")] = False,
    json_out: JsonOpt = False,
    fmt: Annotated[Format, typer.Option("--format", help="Output format on stdout.")] = Format.human,
    sarif: Annotated[Path | None, typer.Option(help="Also write SARIF 2.1.0 to this file (code scanning).")] = None,
    ssh_user: Annotated[str | None, typer.Option(help="User the inventory connects as (lockout checks).")] = None,
    ssh_port: Annotated[int, typer.Option(help="Port the inventory connects to (lockout checks).")] = 22,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Ignore cached results.")] = False,
    accept: AcceptOpt = None,
) -> int:
    """Check playbooks before they run: Ansible's syntax check, ansible-lint and safeapply's rules.

    Blocking findings (the playbook would fail or do harm: syntax/YAML errors, unknown modules, options or
    values, filters and `src:` files, undefined variables, curl|sh, world/group-writable system paths,
    SSH/firewall lockouts, sudoers without validate for a non-root --ssh-user) exit 16. Style and hygiene
    findings are warnings: shown with their fix, exit 0 unless --strict; so is a part of the lint that could
    not run (lint-incomplete). A missing file exits 2. Never touches the network; results are cached by content.
    Vaulted vars files are decrypted with the project's vault passwords (ansible.cfg's, or the vault options
    here, as for run); a password that does not decrypt them exits 19.
    """
    from safeapply.lint import lint_paths

    for p in playbooks:
        if not p.is_file():
            raise UsageError(f"playbook {p} {'is not a file' if p.exists() else 'not found'}",
                             "give the path of a playbook file")
    with err_console.status("linting...") if err_console.is_terminal else _nothing():
        report = lint_paths(playbooks, profile=profile, strict=strict, use_cache=not no_cache,
                            connection=Connection(user=ssh_user, port=ssh_port), accept=accept or [])
    if sarif:
        from safeapply.lint.sarif import to_sarif

        sarif.write_text(json.dumps(to_sarif(report), indent=2))
    if json_out or fmt is Format.json:
        emit_json("lint", report.to_dict())
    elif fmt is Format.sarif:
        from safeapply.lint.sarif import to_sarif

        sys.stdout.write(json.dumps(to_sarif(report), indent=2) + "\n")  # SARIF's own schema
    else:
        render(report)
    return int(ExitCode.LINT if report.blocking else ExitCode.OK)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def render(report: LintReport) -> None:
    current = None
    for f in report.findings:
        if f.file != current:
            current = f.file
            console.print(f"\n[bold]{escape(f.file or '(tools)')}[/bold]")
        blocking = f.severity is Severity.BLOCKING or report.strict
        tag = "[red]BLOCK[/red]" if blocking else "[yellow]warn [/yellow]"
        console.print(f"  {tag} {f.line:>4}  {escape(f.rule)}: {escape(f.message)}", highlight=False)
        if f.fix:
            console.print(f"              fix: {f.fix}", markup=False)
    nb, nw = len(report.blocking), len(report.warnings)
    verdict = "FAILED" if report.blocking else "passed"
    cached = " (cached)" if report.cached else ""
    for a in report.accepted:
        console.print(f"  accepted ({a['accepted_by']}): {a['file']}:{a['line']} {a['rule']}: {a['message']}",
                      markup=False)
    accepted = f", {len(report.accepted)} accepted" if report.accepted else ""
    console.print(f"\nlint {verdict}: {nb} blocking, {nw} warning(s){accepted} in {len(report.files)} file(s)"
                  f"{cached}")
