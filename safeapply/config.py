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
    The state dir itself, when it exists already, is never chmod-ed: a directory others can enter (say
    SAFEAPPLY_STATE_DIR=/tmp) is refused instead of being locked away from them."""
    if path == state_dir() and path.is_dir() and path.stat().st_mode & 0o077:
        from safeapply.errors import ConfigError

        raise ConfigError(f"the state dir {path} is open to other users (mode {path.stat().st_mode & 0o777:o}): it "
                          "would hold copies of /etc/shadow and private keys",
                          f"point SAFEAPPLY_STATE_DIR at a new directory, or `chmod 700 {path}` if it is yours")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def file_name(host: str) -> str:
    """A host name as one file name, distinct for distinct names ('web:1' and 'web_1' included)."""
    return urllib.parse.quote(host, safe="").replace(".", "%2E") or "%"


def log_dir() -> Path:
    return private_dir(state_dir() / "logs")
