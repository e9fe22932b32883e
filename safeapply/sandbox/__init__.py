"""Disposable local test hosts: systemd-nspawn over a cached Debian rootfs, each in its own netns."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from safeapply.errors import SafeapplyError, UsageError
from safeapply.sandbox import network, rootfs
from safeapply.sandbox.containers import ensure_containers_rootfs
from safeapply.sandbox.host import (
    DEFAULTS,
    Layout,
    SandboxError,
    SandboxInfo,
    SandboxOptions,
    ensure_controller_key,
    info,
    up,
)
from safeapply.sandbox.paths import SandboxPaths
from safeapply.sandbox.rootfs import ensure_rootfs
from safeapply.sandbox.teardown import down, down_all, known_names, leftovers

__all__ = [
    "Layout",
    "SandboxError",
    "SandboxInfo",
    "SandboxOptions",
    "SandboxPaths",
    "down",
    "down_all",
    "ensure_rootfs",
    "info",
    "known_names",
    "leftovers",
    "network",
    "rootfs",
    "up",
    "up_many",
]


def up_many(names: list[str], opts: SandboxOptions = DEFAULTS) -> list[SandboxInfo]:
    """Boot several sandboxes in parallel (the rootfs and the key are made first, once). All or none: when one
    fails, the others this call booted are removed again, and the error names each failure."""
    if len(set(names)) != len(names):
        raise UsageError("a sandbox is named twice", "name each sandbox once")
    for name in names:
        SandboxPaths(name)  # a bad name fails before anything boots
    ensure_containers_rootfs() if opts.containers else ensure_rootfs()
    ensure_controller_key()
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        futures = [(n, pool.submit(up, n, opts)) for n in names]
    failed = [(n, e) for n, f in futures if (e := f.exception()) is not None]
    booted = [f.result() for _, f in futures if f.exception() is None]
    if not failed:
        return booted
    for i in booted:
        down(i.name, fast=True)
    if len(names) == 1:
        raise failed[0][1]
    were = "was" if len(booted) == 1 else "were"
    undone = f"; {', '.join(i.name for i in booted)} came up and {were} removed again" if booted else ""
    why = "; ".join(f"{n}: {e}" for n, e in failed)
    usage = all(isinstance(e, UsageError) for _, e in failed)
    if not all(isinstance(e, SafeapplyError) for _, e in failed):
        raise failed[0][1]  # a bug or an interrupt: shown as such by the CLI
    raise (UsageError if usage else SandboxError)(f"sandbox up failed for {why}{undone}")
