"""safeapply lint: Ansible's syntax check, ansible-lint and safeapply's own rules in one pass.

Library API for the run pipeline: `lint_paths(paths, profile=..., strict=..., connection=...) -> LintReport`.
Importing this package is cheap; Ansible is imported only when a result is not in the cache.
"""

from __future__ import annotations

from safeapply.lint.engine import lint_paths
from safeapply.lint.model import Connection, Finding, LintReport, Severity

__all__ = ["Connection", "Finding", "LintReport", "Severity", "lint_paths"]
