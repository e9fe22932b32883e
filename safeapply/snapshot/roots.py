"""Snapshot roots, canonical once at the start: absolute, normalised (`//etc/` is `/etc`), without duplicates,
and without a root inside another (the outer one holds it). A snapshot of overlapping roots could never be
restored, so they are merged before anything is taken."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence

from safeapply.errors import UsageError


def canonical_roots(roots: Sequence[str]) -> tuple[str, ...]:
    """The roots to snapshot, sorted; a relative root or one with '..' is the user's mistake (UsageError)."""
    out: list[str] = []
    for r in sorted({_one(r) for r in roots}):
        if not any(r == o or r.startswith(o.rstrip("/") + "/") for o in out):
            out.append(r)
    return tuple(out)


def _one(root: str) -> str:
    if not root.startswith("/"):
        raise UsageError(f"snapshot root {root!r} is not an absolute path", "give it as /etc, /opt/app, ...")
    if ".." in root.split("/"):
        raise UsageError(f"snapshot root {root!r} contains '..'", "give the path without '..'")
    return posixpath.normpath(re.sub("/+", "/", root))
