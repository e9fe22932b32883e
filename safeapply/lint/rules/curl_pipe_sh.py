"""curl-pipe-sh: a downloaded script piped straight into a shell.

Whatever the server returns runs as the task's user (often root), unverified and unrepeatable. Blocks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from safeapply.lint.model import Finding, Severity
from safeapply.lint.rules.base import Context, command_text

ID = "curl-pipe-sh"
SEVERITY = Severity.BLOCKING
DOC = "curl/wget output piped into sh/bash runs unverified remote code; download, verify, then run."

PIPE_TO_SHELL = re.compile(r"\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+(-\S+\s+)*)?(\S*/)?(ba|da|z|k)?sh\b")


def check(ctx: Context) -> Iterator[Finding]:
    for task, _info in ctx.tasks("shell", "command", "raw"):
        if PIPE_TO_SHELL.search(command_text(task)):
            yield Finding(ID, SEVERITY, task.file, task.key_line(task.action),
                          "a downloaded script is piped into a shell",
                          "download with ansible.builtin.get_url and a `checksum:`, then run the file "
                          "(or use the vendor's package repository)")
