"""Names and places of sandbox hosts. Everything we create carries the prefix, so teardown finds exactly it:

netns `P-NAME`, nspawn machine `P-NAME`, overlay mount source `P-NAME`, cgroups `safeapply-P/NAME`,
state `$SAFEAPPLY_SANDBOX_DIR/P/hosts/NAME`, a private network's netns `P-net-NET` (so sandbox names may not
start with `net-`). P is $SAFEAPPLY_SANDBOX_PREFIX (default `sa`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from safeapply.errors import UsageError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}$")
NETWORK_NETNS = "net-"  # after the prefix: `P-net-NET` is a network's netns, never a sandbox's
PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,5}$")


def prefix() -> str:
    p = os.environ.get("SAFEAPPLY_SANDBOX_PREFIX", "sa")
    if not PREFIX_RE.match(p):
        raise UsageError(f"bad SAFEAPPLY_SANDBOX_PREFIX {p!r}", "use 1-6 lowercase letters/digits")
    return p


def base_dir() -> Path:
    return Path(os.environ.get("SAFEAPPLY_SANDBOX_DIR", "/var/tmp/safeapply-sandbox")) / prefix()


def cache_dir() -> Path:
    return Path(os.environ.get("SAFEAPPLY_ROOTFS_CACHE", "/var/cache/safeapply"))


def controller_key() -> Path:
    return base_dir() / "id_ed25519"


def cgroup_dirs(name: str | None = None) -> list[Path]:
    """The cgroup dirs of one sandbox (or of the prefix, with name=None), in every mounted hierarchy."""
    rel = f"safeapply-{prefix()}" + (f"/{name}" if name else "")
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.procs").exists():  # pure cgroup2
        return [root / rel]
    return [root / h / rel for h in ("systemd", "unified") if (root / h / "cgroup.procs").exists()]


@dataclass(frozen=True)
class SandboxPaths:
    name: str

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.name):
            raise UsageError(f"bad sandbox name {self.name!r}", "use 1-20 chars: lowercase letters, digits, '-'")
        if self.name.startswith(NETWORK_NETNS):
            raise UsageError(f"bad sandbox name {self.name!r}", f"names starting with {NETWORK_NETNS!r} are reserved")

    @property
    def machine(self) -> str:
        return f"{prefix()}-{self.name}"

    @property
    def netns(self) -> str:
        return self.machine

    @property
    def dir(self) -> Path:
        return base_dir() / "hosts" / self.name

    @property
    def merged(self) -> Path:
        return self.dir / "merged"

    @property
    def ssh_config(self) -> Path:
        return self.dir / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory.yml"

    @property
    def options(self) -> Path:
        """What `sandbox up` was asked for (login user, network, address, bastion), never a password."""
        return self.dir / "options.json"

    @property
    def proxy_command(self) -> str:
        return f"ip netns exec {self.netns} nc 127.0.0.1 %p"
