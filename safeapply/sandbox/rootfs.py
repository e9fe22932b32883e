"""The cached Debian rootfs that sandboxes boot (bookworm): built once per recipe (build-rootfs.sh's hash)."""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
from importlib import resources
from pathlib import Path

from safeapply.errors import SafeapplyError
from safeapply.sandbox.paths import cache_dir

READY = ".safeapply-rootfs-ready"


def recipe() -> Path:
    return Path(str(resources.files("safeapply.sandbox") / "build-rootfs.sh"))


def rootfs_path() -> Path:
    digest = hashlib.sha256(recipe().read_bytes()).hexdigest()[:12]
    return cache_dir() / f"rootfs-{digest}"


def ensure_rootfs(log: Path | None = None) -> Path:
    """Build the rootfs if it is missing or its recipe changed (about a minute); a no-op when cached."""
    dest = rootfs_path()
    return build_cached(dest, ["bash", str(recipe()), str(dest)], log or cache_dir() / "build-rootfs.log",
                        "the sandbox rootfs")


def build_cached(dest: Path, argv: list[str], log: Path, what: str) -> Path:
    """Run a build recipe that creates `dest` (and its READY marker) unless that exists; one build at a time."""
    if (dest / READY).exists():
        return dest
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time, others wait and reuse it
        if (dest / READY).exists():
            return dest
        with open(log, "wb") as out:
            rc = subprocess.call(argv, stdout=out, stderr=subprocess.STDOUT)
        if rc != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise SafeapplyError(f"building {what} failed (rc={rc}): {' / '.join(tail)}", f"full log: {log}")
    return dest
