"""Where safeapply keeps its state, and the few settings that come from the environment."""

from __future__ import annotations

import os
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
    """Create `path` (and parents under it) as 0700: the store holds /etc/shadow and private keys."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def log_dir() -> Path:
    return private_dir(state_dir() / "logs")
