"""Where safeapply keeps its state, and the few settings that come from the environment."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path


def state_dir() -> Path:
    """The controller's state dir: $SAFEAPPLY_STATE_DIR, else /var/lib/safeapply as root, else XDG state."""
    if env := os.environ.get("SAFEAPPLY_STATE_DIR"):
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/safeapply")
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "safeapply"


def private_dir(path: Path) -> Path:
    """Create `path` (and parents under it) as 0700: the store holds /etc/shadow and private keys.
    The state dir itself, when it exists already, keeps its mode: SAFEAPPLY_STATE_DIR=/tmp must not lock others
    out of /tmp. What safeapply puts in it is private anyway (directories 0700, files 0600)."""
    base = state_dir()
    if not base.is_dir():
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        base.chmod(0o700)
    if path == base:
        return path
    if not path.is_relative_to(base):
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.chmod(0o700)
        return path
    cur = base
    for part in path.relative_to(base).parts:  # every level below the state dir is ours: 0700
        cur = cur / part
        cur.mkdir(exist_ok=True, mode=0o700)
        cur.chmod(0o700)
    return path


def file_name(host: str) -> str:
    """A host name as one file name, distinct for distinct names ('web:1' and 'web_1' included)."""
    return urllib.parse.quote(host, safe="").replace(".", "%2E") or "%"


def log_dir() -> Path:
    return private_dir(state_dir() / "logs")
