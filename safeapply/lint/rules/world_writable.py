"""world-writable: a file mode that lets every user write (0777, 0666, o+w).

On a system path (/etc, /usr, /var/lib...) writable-system-path blocks it; elsewhere this is a warning.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from safeapply.lint.model import Finding, Severity
from safeapply.lint.rules.base import Context, args_of, has_jinja
from safeapply.lint.rules.writable_system_path import SYSTEM, bits
from safeapply.lint.templates import literal_vars, render_literal

ID = "world-writable"
SEVERITY = Severity.WARNING
DOC = "mode gives write permission to others outside system paths (those: writable-system-path, blocking)."

_SYMBOLIC = re.compile(r"(^|,)[ugoa]*[oa][ugoa]*[+=][rwxXst]*w")


def world_writable(mode: Any) -> bool:
    if isinstance(mode, bool) or mode is None:
        return False
    if isinstance(mode, int):
        return bool(mode & 0o002)
    text = str(mode).strip()
    if has_jinja(text):
        return False
    if re.fullmatch(r"0?o?[0-7]{3,4}", text):
        return bool(int(text.lstrip("0o") or "0", 8) & 0o002)
    return bool(_SYMBOLIC.search(text)) or text.startswith(("+w", "=w"))


def check(ctx: Context) -> Iterator[Finding]:
    known: dict[str, str] | None = None
    for task, _info in ctx.tasks():
        args = args_of(task)
        if "mode" not in args or not world_writable(args["mode"]):
            continue
        path = str(args.get("dest") or args.get("path") or args.get("name") or "")
        if has_jinja(path):
            known = literal_vars(ctx.project) if known is None else known
            path = render_literal(path, known, task.data.get("vars")) or path
        if SYSTEM.match(path):
            continue  # writable-system-path gives the verdict
        found = bits(args["mode"])
        line = getattr(task.args, "key_lines", {}).get("mode", task.line)
        yield Finding(ID, SEVERITY, task.file, line, f"mode {found[1] if found else args['mode']} makes "
                      f"{path or 'the file'} "
                      "writable by every user", "use 0644 for files or 0755 for directories "
                      "(0640/0750 for anything secret), quoted as a string")
