"""Benchmark: full snapshot, incremental snapshot (one changed file) and restore of a sandbox's /etc, side by
side with the raw OpenSSH baseline `ssh HOST 'tar -C / -cpf - etc' > file` (and `tar -xpf -` back).

Run: SAFEAPPLY_SANDBOX_PREFIX=bench .venv/bin/python bench/bench_snapshot.py   (boots and removes a sandbox)
Prints the median of REPS runs and the ratios against the targets. Not a test: no timed assertions."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

os.environ.setdefault("SAFEAPPLY_SANDBOX_PREFIX", "bench")

from safeapply import sandbox as sb
from safeapply.inventory import Host, resolve_hosts
from safeapply.snapshot import RestoreReport, SnapshotInfo, Store, restore, take

T = TypeVar("T")

NAME = "snapbench"
REPS = 3
# Changed before the restore run: every mtime, a few dirs removed, and the on-target store emptied, so that
# the controller must send every blob and the host rewrite a good part of /etc.
DAMAGE = ("rm -rf /var/lib/safeapply /etc/apt /etc/dpkg /etc/init.d /etc/X11 && "
          "find /etc -xdev -newer /etc/hostname -prune -o -type f -exec touch -d @1 {} + ")


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def ssh(cfg: Path, cmd: str, stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> None:
    subprocess.run(["ssh", "-F", str(cfg), NAME, cmd], stdin=stdin, stdout=stdout, check=True)


def main() -> int:
    sb.ensure_rootfs()
    sb.up(NAME)
    try:
        return run(sb.SandboxPaths(NAME))
    finally:
        sb.down(NAME)


def snap(host: Host, store: Store) -> SnapshotInfo:
    with host.connect() as t:
        return take(t, ["/etc"], store)


def back(host: Host, store: Store, sid: str) -> RestoreReport:
    with host.connect() as t:
        return restore(t, sid, store)


def one(i: int, paths: sb.SandboxPaths, host: Host, tmp: Path, rows: dict[str, list[float]],
        sizes: dict[str, int]) -> None:
    cfg, tar = paths.ssh_config, tmp / "etc.tar"
    with open(tar, "wb") as f:
        dt, _ = timed(lambda: ssh(cfg, "tar -C / -cpf - etc", stdout=f))
    rows["raw"].append(dt)
    sizes["raw"] = tar.stat().st_size
    ssh(cfg, "rm -rf /var/lib/safeapply")
    store = Store(tmp / f"store{i}")
    dt, full = timed(lambda: snap(host, store))
    rows["full"].append(dt)
    sizes["full"] = full.bytes_received + full.bytes_sent
    ssh(cfg, f"echo bench{i} >> /etc/motd")
    dt, incr = timed(lambda: snap(host, store))
    rows["incr"].append(dt)
    sizes["incr"] = incr.bytes_received + incr.bytes_sent
    ssh(cfg, DAMAGE)
    with open(tar, "rb") as f:
        dt, _ = timed(lambda: ssh(cfg, "tar -C / -xpf -", stdin=f))
    rows["raw_restore"].append(dt)
    ssh(cfg, DAMAGE)
    dt, rep = timed(lambda: back(host, store, incr.id))
    rows["restore"].append(dt)
    sizes["restored_changes"] = len(rep.changes)


def run(paths: sb.SandboxPaths) -> int:
    host = resolve_hosts([str(paths.inventory)], NAME)[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench-snap-"))
    rows: dict[str, list[float]] = {k: [] for k in ("raw", "full", "incr", "raw_restore", "restore")}
    sizes: dict[str, int] = {}
    for i in range(REPS):
        one(i, paths, host, tmp, rows, sizes)
    shutil.rmtree(tmp)
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"/etc of a Debian sandbox: tar {sizes['raw'] / 1024:.0f} KiB; median of {REPS} runs")
    print(f"raw tar over OpenSSH        {med['raw']:.3f} s")
    print(f"full snapshot               {med['full']:.3f} s   ratio {med['full'] / med['raw']:.2f}x (target <= 1.5x)")
    print(f"incremental (1 file)        {med['incr']:.3f} s   bytes both ways {sizes['incr']} / {sizes['full']} = "
          f"{100 * sizes['incr'] / sizes['full']:.1f}% (target < 5%)")
    print(f"raw tar -x over OpenSSH     {med['raw_restore']:.3f} s")
    print(f"restore ({sizes['restored_changes']} changes)      {med['restore']:.3f} s   ratio "
          f"{med['restore'] / med['raw_restore']:.2f}x (target <= 2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
