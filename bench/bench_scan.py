"""Scan benchmark: one sandbox, then 8 sandboxes in parallel (targets: <= 0.5 s per host once connected,
8 hosts <= 2x one host). For reference, the raw time of `ss -Hltnup` over plain OpenSSH on the same host.

Run once (it boots and tears down its own sandboxes): SAFEAPPLY_SANDBOX_PREFIX=bench .venv/bin/python
bench/bench_scan.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("SAFEAPPLY_SANDBOX_PREFIX", "bench")

from safeapply import sandbox as sb
from safeapply.inventory import resolve_hosts
from safeapply.scan import scan_host
from safeapply.transport.base import Transport

N = 8
ROUNDS = 3


def connect(name: str) -> Transport:
    return resolve_hosts([str(sb.SandboxPaths(name).inventory)], name)[0].connect()


def timed_scan(t: Transport) -> float:
    start = time.perf_counter()
    scan_host(t)
    return time.perf_counter() - start


def raw_ss(name: str) -> float:
    cfg = str(sb.SandboxPaths(name).ssh_config)
    subprocess.run(["ssh", "-F", cfg, "-l", "root", name, "true"], check=True, capture_output=True)
    start = time.perf_counter()
    subprocess.run(["ssh", "-F", cfg, "-l", "root", name, "ss -Hltnup"], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    names = [f"b{i}" for i in range(N)]
    sb.ensure_rootfs()
    try:
        for n in names:
            sb.up(n)
        transports = [connect(n) for n in names]
        one = [timed_scan(transports[0]) for _ in range(ROUNDS)]
        par = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=N) as ex:
                list(ex.map(timed_scan, transports))
            par.append(time.perf_counter() - start)
        ss = [raw_ss(names[0]) for _ in range(ROUNDS)]
        for t in transports:
            t.close()
    finally:
        for n in names:
            sb.down(n, fast=True)
    m1, m8, mss = statistics.median(one), statistics.median(par), statistics.median(ss)
    print(f"scan 1 host (connected, median of {ROUNDS}):   {m1:.3f} s   (target <= 0.5 s)")
    print(f"scan {N} hosts in parallel (median of {ROUNDS}): {m8:.3f} s   ratio {m8 / m1:.2f}x (target <= 2x)")
    print(f"reference: ssh HOST ss -Hltnup (OpenSSH, new session, median): {mss:.3f} s")


if __name__ == "__main__":
    main()
