"""Processes of a sandbox as seen from the controller: running a tool, pid files, liveness, waiting for an exit.
Used by booting (`host`), networks (`network`) and teardown (`teardown`), which import it and not each other's
helpers."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from safeapply.errors import SafeapplyError


class SandboxError(SafeapplyError):
    pass


def sh(*argv: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a tool; with check, a failure is a SandboxError showing the command and its stderr. Secrets go in
    `stdin`, never in argv."""
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False,
                          stdin=None if stdin is not None else subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise SandboxError(f"`{' '.join(argv)}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


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
