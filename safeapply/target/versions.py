"""Installed versions of this package on a host: after an install, drop the old ones nothing needs.

Kept: the newest KEEP by install time, the one just installed, and every version an armed dead-man's switch
(its service file) or the self-restore program names. Temp files of an install that died are removed after
a day.
"""

import contextlib
import os
import time
from typing import List, Set

from . import layout

KEEP = 3
STALE_TEMP_S = 86400.0


def referenced(texts: List[str], directory: str) -> Set[str]:
    """File names of installed versions under `directory` that any of `texts` mentions."""
    prefix = os.path.join(directory, "")
    out: Set[str] = set()
    for text in texts:
        start = text.find(prefix)
        while start >= 0:
            end = text.find(".pyz", start)
            if end < 0:
                break
            out.add(text[start + len(prefix):end + len(".pyz")])
            start = text.find(prefix, end)
    return out


def _read_all(paths: List[str]) -> List[str]:
    texts = []
    for p in paths:
        with contextlib.suppress(OSError), open(p, encoding="utf-8", errors="replace") as f:
            texts.append(f.read())
    return texts


def users() -> List[str]:
    """Files that name an installed version: the switch's services and the self-restore program."""
    units = []
    with contextlib.suppress(OSError):
        units = [os.path.join(layout.UNIT_DIR, n) for n in os.listdir(layout.UNIT_DIR)
                 if n.startswith("safeapply-deadman-") and n.endswith(".service")]
    return _read_all([*units, os.path.join(layout.BASE, layout.RESTORE_PROGRAM)])


def prune(directory: str, current: str, now: float = 0.0) -> List[str]:
    """Remove old versions and stale temp files under `directory`; returns the names removed."""
    now = now or time.time()
    directory = os.path.expanduser(directory)
    names = os.listdir(directory)
    installed = sorted((n for n in names if n.endswith(".pyz")),
                       key=lambda n: os.stat(os.path.join(directory, n)).st_mtime, reverse=True)
    keep = set(installed[:KEEP]) | {current + ".pyz"} | referenced(users(), directory)
    drop = [n for n in installed if n not in keep]
    drop += [n for n in names if n.startswith(layout.TMP_PREFIX) and n.endswith(".tmp")
             and now - os.stat(os.path.join(directory, n)).st_mtime > STALE_TEMP_S]
    for n in drop:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, n))
    return drop
