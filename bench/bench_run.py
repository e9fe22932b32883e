"""`safeapply run` vs bare `ansible-playbook` on the same passing playbook and sandbox, side by side.

Usage: SAFEAPPLY_SANDBOX_PREFIX=hr .venv/bin/python bench/bench_run.py [--rounds N]
Boots one sandbox, runs each command N times alternately (the playbook changes a file every round, so
every run applies something), prints medians and the ratio. Target: ratio <= 1.5 (stretch 1.2).
"""

from __future__ import annotations

import argparse
import os
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


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - t0
    if proc.returncode not in (0, 6):
        raise SystemExit(f"{argv[0]} exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    name = "bench"
    sb.up(name)
    try:
        inv = str(sb.SandboxPaths(name).inventory)
        with tempfile.TemporaryDirectory() as tmp:
            pb = Path(tmp) / "bench.yml"
            pb.write_text(PLAYBOOK)
            env = {**os.environ, "SAFEAPPLY_STATE_DIR": str(Path(tmp) / "state"),
                   "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
            bare, safe = [], []
            for i in range(args.rounds + 1):  # round 0 warms caches (lint cache, snapshot store)
                b = timed([str(BIN / "ansible-playbook"), "-i", inv, str(pb), "-e", f"round=b{i}"], env)
                s = timed([str(BIN / "safeapply"), "run", str(pb), "-i", inv, "--yes", "-e", f"round=s{i}"], env)
                if i:
                    bare.append(b)
                    safe.append(s)
                print(f"round {i}{' (warm-up)' if not i else ''}: ansible-playbook {b:.2f}s  safeapply run {s:.2f}s")
    finally:
        sb.down(name, fast=True)
    mb, ms = statistics.median(bare), statistics.median(safe)
    print(f"\nmedian over {args.rounds} rounds: ansible-playbook {mb:.2f}s, safeapply run {ms:.2f}s, "
          f"ratio {ms / mb:.2f}x (target <= 1.5x, stretch 1.2x)")


if __name__ == "__main__":
    main()
