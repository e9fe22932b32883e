"""`safeapply run` vs bare `ansible-playbook` on the same passing playbook and sandbox, side by side.

Usage: SAFEAPPLY_SANDBOX_PREFIX=hr .venv/bin/python bench/bench_run.py [--rounds N] [--no-deadman]

Boots one sandbox and runs, every round, three commands one after the other (the playbook changes a file
every round, so every run applies something):

  bare   ansible-playbook -i INV bench.yml
  cold   safeapply run, lint cache emptied first (a new or edited playbook: ansible-lint really runs)
  warm   safeapply run, lint cache kept (the cron case: the same playbook again; lint answers from its cache)

Prints medians, both ratios (target <= 1.5x, stretch 1.2x) and the median stage timings of each safeapply
run from its run record. The snapshot store is kept across rounds in both cases, as it would be in real use.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from safeapply import sandbox as sb

BIN = Path(sys.executable).parent
PLAYBOOK = """- hosts: all
  gather_facts: false
  tasks:
    - name: write a config file
      ansible.builtin.copy:
        dest: /etc/bench-demo.conf
        content: "round {{ round }}\\n"
        mode: "0644"
    - name: a second file
      ansible.builtin.copy:
        dest: /etc/bench-demo2.conf
        content: "round {{ round }}\\n"
        mode: "0644"
"""
KINDS = ("bare", "cold", "warm")
Round = dict[str, tuple[float, dict[str, float]]]


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, dict[str, float]]:
    """Wall time of one command, and the stage timings when it is a `safeapply run --json`."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - t0
    if proc.returncode not in (0, 6):
        raise SystemExit(f"{argv[0]} exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    timings: dict[str, float] = {}
    if "--json" in argv:
        timings = dict(json.loads(proc.stdout).get("timings") or {})
    return took, timings


def one_round(i: int, inv: str, pb: Path, env: dict[str, str], lint_cache: Path, extra: list[str]) -> Round:
    safe = [str(BIN / "safeapply"), "run", str(pb), "-i", inv, "--yes", "--json", *extra]
    out = {"bare": timed([str(BIN / "ansible-playbook"), "-i", inv, str(pb), "-e", f"round=b{i}"], env)}
    shutil.rmtree(lint_cache, ignore_errors=True)
    out["cold"] = timed([*safe, "-e", f"round=c{i}"], env)
    out["warm"] = timed([*safe, "-e", f"round=w{i}"], env)  # same content as `cold`: a lint cache hit
    return out


def report(results: list[Round]) -> None:
    med = {k: statistics.median(r[k][0] for r in results) for k in KINDS}
    n = len(results)
    print(f"\nmedian over {n} rounds (target <= 1.5x, stretch 1.2x):")
    print(f"  ansible-playbook             {med['bare']:6.2f}s  1.00x")
    print(f"  safeapply run, lint cold     {med['cold']:6.2f}s  {med['cold'] / med['bare']:.2f}x")
    print(f"  safeapply run, lint cached   {med['warm']:6.2f}s  {med['warm'] / med['bare']:.2f}x")
    stages = [s for s in results[0]["cold"][1] if s != "total"] + ["total"]
    print("\nmedian stage timings (s; stages overlap, see safeapply/run.py):")
    print(f"  {'stage':<16}{'cold':>8}{'warm':>8}")
    for s in stages:
        c = statistics.median(r["cold"][1].get(s, 0.0) for r in results)
        w = statistics.median(r["warm"][1].get(s, 0.0) for r in results)
        print(f"  {s:<16}{c:8.2f}{w:8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-deadman", action="store_true",
                    help="safeapply run --deadman-deadline 0 (no dead-man's switch: arm/confirm and its settle)")
    args = ap.parse_args()
    name = "bench"
    sb.up(name)
    try:
        inv = str(sb.SandboxPaths(name).inventory)
        with tempfile.TemporaryDirectory() as tmp:
            pb = Path(tmp) / "bench.yml"
            pb.write_text(PLAYBOOK)
            state = Path(tmp) / "state"
            env = {**os.environ, "SAFEAPPLY_STATE_DIR": str(state),
                   "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
            results = []
            for i in range(args.rounds + 1):  # round 0 warms the OS page cache and the snapshot store
                extra = ["--deadman-deadline", "0"] if args.no_deadman else []
                r = one_round(i, inv, pb, env, state / "cache" / "lint", extra)
                print(f"round {i}{' (warm-up)' if not i else ''}: "
                      + "  ".join(f"{k} {r[k][0]:.2f}s" for k in KINDS), flush=True)
                if i:
                    results.append(r)
    finally:
        sb.down(name, fast=True)
    report(results)


if __name__ == "__main__":
    main()
