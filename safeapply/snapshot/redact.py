"""What a diff must not show: whole secret files (by path or by content) and values of secret-named keys."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence

SECRET_PATHS = (
    "*/shadow", "*/shadow-", "*/gshadow", "*/gshadow-", "*/ssh_host_*_key", "*/ssl/private/*", "*.key",
    "*/id_rsa", "*/id_ecdsa", "*/id_ed25519", "*/id_dsa", "*/.git-credentials", "*/krb5.keytab", "*.keytab",
)
SECRET_CONTENT = (b"PRIVATE KEY-----", b"BEGIN OPENSSH PRIVATE KEY")
_KEYWORDS = r"(?:pass(?:wd|word|phrase)?|secret|token|api[_-]?key|credentials?|private[_-]?key)"
_ASSIGN = re.compile(r"(?i)^(\s*[\"']?[\w.\-]*" + _KEYWORDS + r"[\w.\-]*[\"']?\s*(?:[:=]|\s)\s*)(\S.*)$")
MASK = "<redacted>"


def patterns(extra: Sequence[str] = ()) -> tuple[str, ...]:
    """Built-in secret path patterns, plus $SAFEAPPLY_SECRET_PATHS (colon-separated) and `extra`."""
    env = [p for p in os.environ.get("SAFEAPPLY_SECRET_PATHS", "").split(":") if p]
    return (*SECRET_PATHS, *env, *extra)


def is_secret(path: str, content: bytes | None, pats: Sequence[str]) -> bool:
    if any(fnmatch.fnmatchcase(path, p) for p in pats):
        return True
    return content is not None and any(m in content for m in SECRET_CONTENT)


def redact_line(line: str) -> str:
    m = _ASSIGN.match(line)
    if not m or m.group(2).strip().startswith(MASK):
        return line
    return m.group(1) + MASK + ("\n" if line.endswith("\n") else "")


def redact_text(lines: list[str]) -> list[str]:
    return [redact_line(x) for x in lines]
