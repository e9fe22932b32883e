"""safeapply's own lint rules: one module per rule, each with ID, SEVERITY, DOC, check() and examples.

Examples live in examples/<rule-id>/{pass,fail}.yml and are run by the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from safeapply.errors import SafeapplyError
from safeapply.lint.model import Finding, Severity
from safeapply.lint.rules import (
    controller_lookup,
    curl_pipe_sh,
    firewall_lockout,
    ignore_errors_change,
    invalid_choice,
    jinja_syntax,
    latest_tag,
    missing_src,
    plaintext_secret,
    shell_instead_of_module,
    sshd_lockout,
    undefined_var,
    unknown_filter,
    unknown_module,
    unknown_option,
    unvalidated_critical_file,
    world_writable,
    writable_system_path,
)
from safeapply.lint.rules.base import Context, RuleModule

RULES: tuple[RuleModule, ...] = (
    unknown_module, unknown_option, invalid_choice, jinja_syntax, undefined_var, unknown_filter, missing_src,
    plaintext_secret, ignore_errors_change, shell_instead_of_module, latest_tag, curl_pipe_sh, world_writable,
    writable_system_path, unvalidated_critical_file, sshd_lockout, firewall_lockout, controller_lookup,
)
EXAMPLES = Path(__file__).parent / "examples"


def run_rules(ctx: Context) -> Iterator[Finding]:
    """Run every rule; a crashing rule becomes a warning about itself and the others go on."""
    for rule in RULES:
        try:
            yield from rule.check(ctx)
        except SafeapplyError:  # the user's input (a vault password that does not decrypt): not a bug
            raise
        except Exception as e:  # a bug in one rule must not hide the findings of the others
            yield Finding(rule.ID, Severity.WARNING, "", 0,
                          f"rule {rule.ID} crashed: {type(e).__name__}: {e}", "report this as a safeapply bug")
