"""Container sandboxes (`safeapply sandbox up --containers`): the base recipe built for Debian 13 trixie (podman 5,
with the quadlet generator) plus podman, docker and local busybox images, cached in its own directory named after
both recipes' hashes (build-rootfs-containers.sh). The plain sandboxes stay Debian 12 bookworm.

Images in that rootfs, built without any registry (busybox-static imported with `podman import`):

* `localhost/busybox:latest` — runs `sh`
* `docker.io/library/httpd-lite:1` and `:2` (= `:latest`) — `httpd -f -p 8080 -h /www`, two image IDs
* `docker.io/prom/agent-lite:latest` — `httpd -f -p 9090 -h /www`: a port only the image knows

docker (Debian's docker.io) is installed but not started at boot: `systemctl start docker &&
safeapply-load-images docker` (`start_docker`) gives it the same images.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from safeapply.sandbox.paths import cache_dir
from safeapply.sandbox.rootfs import build_cached
from safeapply.sandbox.rootfs import recipe as _base_recipe

IMAGES = ("localhost/busybox:latest", "docker.io/library/httpd-lite:1", "docker.io/library/httpd-lite:2",
          "docker.io/prom/agent-lite:latest")


def _recipe() -> Path:
    return Path(str(resources.files("safeapply.sandbox") / "build-rootfs-containers.sh"))


def containers_rootfs_path() -> Path:
    digest = hashlib.sha256(_recipe().read_bytes() + _base_recipe().read_bytes()).hexdigest()[:12]
    return cache_dir() / f"rootfs-containers-{digest}"


def ensure_containers_rootfs(log: Path | None = None) -> Path:
    """Build the containers rootfs: the base recipe for trixie, then the engines (a few minutes, once per recipe)."""
    dest = containers_rootfs_path()
    return build_cached(dest, ["bash", str(_recipe()), str(_base_recipe()), str(dest)],
                        log or cache_dir() / "build-rootfs-containers.log", "the containers sandbox rootfs")


def containers_env() -> dict[str, str]:
    """systemd-nspawn's environment for a container sandbox (its netns is its own, loopback only):
    /proc/sys/net writable (netavark turns on ip_forward, crun sets ping_group_range); a cgroup v2 tree of its
    own (this machine's v1 controllers are read-only inside, and dockerd's runc needs cgroups); no seccomp
    filter (runc joins a session keyring, and nspawn's filter refuses keyctl)."""
    return {"SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network", "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1",
            "SYSTEMD_SECCOMP": "0"}


START_DOCKER = "systemctl start docker && safeapply-load-images docker >/dev/null"
