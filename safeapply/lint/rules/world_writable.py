"""world-writable: a file mode that lets every user write (0777, 0666, o+w).

Under /etc any local user could then change system configuration: that blocks. Elsewhere it is a warning.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from safeapply.lint.model import Finding, Severity
from safeapply.lint.rules.base import Context, args_of, has_jinja

ID = "world-writable"
SEVERITY = Severity.BLOCKING
DOC = "mode gives write permission to others; blocking under /etc, a warning elsewhere."

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
    for task, _info in ctx.tasks():
        args = args_of(task)
        if "mode" not in args or not world_writable(args["mode"]):
            continue
        path = str(args.get("dest") or args.get("path") or args.get("name") or "")
        sev = Severity.BLOCKING if path.startswith("/etc") else Severity.WARNING
        line = getattr(task.args, "key_lines", {}).get("mode", task.line)
        yield Finding(ID, sev, task.file, line, f"mode {args['mode']!r} makes {path or 'the file'} "
                      "writable by every user", "use 0644 for files or 0755 for directories "
                      "(0640/0750 for anything secret), quoted as a string")
