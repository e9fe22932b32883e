"""Disposable local test hosts: systemd-nspawn over a cached Debian rootfs, each in its own netns."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from safeapply.sandbox import rootfs
from safeapply.sandbox.containers import ensure_containers_rootfs
from safeapply.sandbox.host import SandboxError, SandboxInfo, info, up
from safeapply.sandbox.paths import SandboxPaths
from safeapply.sandbox.rootfs import ensure_rootfs
from safeapply.sandbox.teardown import down, down_all, known_names, leftovers

__all__ = [
    "SandboxError",
    "SandboxInfo",
    "SandboxPaths",
    "down",
    "down_all",
    "ensure_rootfs",
    "info",
    "known_names",
    "leftovers",
    "rootfs",
    "up",
    "up_many",
]


def up_many(names: list[str], containers: bool = False) -> list[SandboxInfo]:
    """Boot several sandboxes in parallel (the rootfs is built first, once)."""
    ensure_containers_rootfs() if containers else ensure_rootfs()
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        return list(pool.map(lambda n: up(n, containers), names))
