"""Processes of a sandbox as seen from the controller: pid files, liveness, waiting for an exit. Used by both
booting (`host`) and teardown (`teardown`), which import it and not each other's helpers."""

from __future__ import annotations

import time
from pathlib import Path


def alive(pid: int) -> bool:
    """kill -0 is true for zombies, and this machine's PID 1 reaps orphans lazily: read the state instead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def read_pid(path: Path) -> int | None:
    """The pid in a pid file, or None when the file is missing or holds no number."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def wait_dead(pid: int, seconds: float) -> bool:
    """Wait up to `seconds` for `pid` to end; True when it did."""
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
