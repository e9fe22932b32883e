"""Rendering helpers shared by commands: one console for humans, plain JSON for machines."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(command: str, obj: dict[str, Any], version: int = 1) -> None:
    """Every `--json` output: one object whose `schema` is `safeapply/<command>/<version>` (the README lists
    each command's top-level keys; append-only: a key that changes meaning gets a new version)."""
    sys.stdout.write(json.dumps({"schema": f"safeapply/{command}/{version}", **obj}, indent=2, sort_keys=True,
                                default=str) + "\n")


def interactive() -> bool:
    return sys.stdin.isatty()


def error_line(message: str) -> None:
    """An error in the one format every command uses (the CLI funnel prints raised errors the same way)."""
    print(f"safeapply: error: {message}", file=sys.stderr)
