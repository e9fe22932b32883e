"""`safeapply run` vs bare `ansible-playbook` (Ansible's defaults) on the same playbook and sandbox, side by side.

Usage: SAFEAPPLY_SANDBOX_PREFIX=hr .venv/bin/python bench/bench_run.py [--rounds N] [--cases two,cron,...]
           [--fleet N]

Cases; in each, every round runs the bare command and safeapply once, in alternating order (bare first in odd
rounds, safeapply first in even ones); medians over the rounds, after one warm-up round:

  two     a 2-copy-task playbook that changes a file every round; lint cached
  cron    bench/realistic/homelab.yml (14 tasks: user, dirs, config files, unit, handler, wait_for) again on a host
          where it already applied: nothing to change, lint cached (the cron case)
  change  the same playbook with `-e app_revision=N` (N = the round): 3 files change and the handler restarts
          the unit; lint cached
  first   the same playbook on a host reset to before it (bench/realistic/reset.sh, not timed): everything is
          created, the unit started; lint cached
  cold    `cron` with safeapply's lint cache emptied (a new or edited playbook: ansible-lint really runs)
  fleet   `cron` on --fleet hosts at once (default 8, as issue 15 names; one inventory)
  mitogen `cron`, bare ansible-playbook with Ansible's defaults vs the same with the mitogen_linear strategy
          (only when mitogen is installed: an evaluation, safeapply does not use it)

Every bare run gets a fresh ControlPath directory and its ControlPersist master is closed afterwards, as in a real
cron run (minutes apart: no master of the previous run is left); safeapply's runs have their own anyway. Besides
wall time, each command's CPU time on the controller (user+sys of it and its children) is printed: on a machine
shared with other work it varies less than wall time. Prints medians, ratios and safeapply's median stage timings
from its run record. The snapshot store is kept across rounds, as in real use.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from safeapply import sandbox as sb
from safeapply.apply import close_control_masters

BIN = Path(sys.executable).parent
HERE = Path(__file__).parent / "realistic"
TWO_TASKS = """- hosts: all
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
CASES = ("two", "cron", "change", "first", "cold", "fleet", "mitogen")


@dataclass
class Sample:
    wall: float
    cpu: float
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Case:
    name: str
    title: str
    inventory: str
    playbook: Path
    baseline: str = "bare ansible-playbook"
    other: str = "safeapply run"
    before: Callable[[], None] | None = None  # before each timed command (not timed)
    cold_lint: bool = False
    mitogen: bool = False
    rows: list[tuple[Sample, Sample]] = field(default_factory=list)


def timed(argv: list[str], env: dict[str, str]) -> Sample:
    """Wall time and controller CPU time of one command, and the stage timings of a `safeapply run --json`."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 6):
        raise SystemExit(f"{argv[0]} exited {proc.returncode}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    timings: dict[str, float] = {}
    if "--json" in argv:
        timings = dict(json.loads(proc.stdout).get("timings") or {})
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return Sample(took, cpu, timings)


class Bench:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.state = tmp / "state"
        self.env = {**os.environ, "SAFEAPPLY_STATE_DIR": str(self.state),
                    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.n = 0

    def bare(self, case: Case, extra: list[str], mitogen: bool = False) -> Sample:
        self.n += 1
        control = self.tmp / f"cp{self.n}"
        env = {**self.env, "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control)}
        if mitogen:
            import ansible_mitogen

            env |= {"ANSIBLE_STRATEGY_PLUGINS": str(Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"),
                    "ANSIBLE_STRATEGY": "mitogen_linear"}
        try:
            return timed([str(BIN / "ansible-playbook"), "-i", case.inventory, str(case.playbook), *extra], env)
        finally:
            close_control_masters(control)

    def safe(self, case: Case, extra: list[str]) -> Sample:
        if case.cold_lint:
            shutil.rmtree(self.state / "cache" / "lint", ignore_errors=True)
        return timed([str(BIN / "safeapply"), "run", str(case.playbook), "-i", case.inventory, "--yes", "--json",
                      *extra], self.env)

    def one_round(self, case: Case, i: int) -> tuple[Sample, Sample]:
        def extra(k: int) -> list[str]:  # k: the command's place in the round (each `change` run changes files)
            if case.name == "two":
                return ["-e", f"round={i}"]
            return ["-e", f"app_revision={100 + 2 * i + k}"] if case.name == "change" else []

        def bare(k: int) -> Sample:
            if case.before:
                case.before()
            return self.bare(case, extra(k))

        def other(k: int) -> Sample:
            if case.before:
                case.before()
            return self.bare(case, extra(k), mitogen=True) if case.mitogen else self.safe(case, extra(k))

        if i % 2:
            a = bare(0)
            b = other(1)
        else:
            b = other(0)
            a = bare(1)
        return a, b


def report(case: Case) -> None:
    rows = case.rows
    wa, wb = (statistics.median(r[k].wall for r in rows) for k in (0, 1))
    ca, cb = (statistics.median(r[k].cpu for r in rows) for k in (0, 1))
    print(f"\n== {case.title}: median of {len(rows)} rounds")
    print(f"  {'':34}{'wall':>8}{'ratio':>8}{'cpu':>8}{'ratio':>8}")
    print(f"  {case.baseline:34}{wa:7.2f}s{1:7.2f}x{ca:7.2f}s{1:7.2f}x")
    print(f"  {case.other:34}{wb:7.2f}s{wb / wa:7.2f}x{cb:7.2f}s{cb / ca:7.2f}x")
    stages = [s for s in rows[0][1].timings if s != "total"]
    if stages:
        print("  safeapply's median stage timings (s; stages overlap, see safeapply/run.py): " + ", ".join(
            f"{s} {statistics.median(r[1].timings.get(s, 0.0) for r in rows):.2f}" for s in stages))


def fleet_inventory(names: list[str], path: Path) -> str:
    hosts = {}
    for n in names:
        hosts.update(yaml.safe_load(sb.SandboxPaths(n).inventory.read_text())["all"]["hosts"])
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}, sort_keys=False))
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cases", default="two,cron,change,first,cold,fleet,mitogen")
    ap.add_argument("--fleet", type=int, default=8)
    args = ap.parse_args()
    wanted = [c for c in args.cases.split(",") if c]
    if set(wanted) - set(CASES):
        ap.error(f"--cases: one or more of {', '.join(CASES)}")
    if "mitogen" in wanted:
        try:
            import ansible_mitogen  # noqa: F401
        except ImportError:
            print("mitogen not installed: its row is left out")
            wanted.remove("mitogen")
    names = ["bench"] + ([f"bench{i}" for i in range(2, args.fleet + 1)] if "fleet" in wanted else [])
    sb.up_many(names)
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            run(Bench(tmp), tmp, names, wanted, args.rounds)
    finally:
        for n in names:
            sb.down(n, fast=True)


def run(bench: Bench, tmp: Path, names: list[str], wanted: list[str], rounds: int) -> None:
    one = str(sb.SandboxPaths("bench").inventory)
    two = tmp / "two.yml"
    two.write_text(TWO_TASKS)
    homelab = HERE / "homelab.yml"
    reset = (HERE / "reset.sh").read_text()

    def reset_hosts() -> None:
        for n in names:
            p = sb.SandboxPaths(n)
            subprocess.run(["ssh", "-F", str(p.ssh_config), n, reset], check=True, capture_output=True)

    edited = tmp / "homelab.yml"  # the cold-lint case: the same tasks, a file lint has not seen
    edited.write_text(homelab.read_text())
    cases = {
        "two": Case("two", "2 copy tasks, a file changed every round, lint cached", one, two),
        "cron": Case("cron", "realistic 14 tasks, nothing to change, lint cached (cron)", one, homelab),
        "change": Case("change", "realistic 14 tasks, 3 files changed and the unit restarted, lint cached", one,
                       homelab),
        "first": Case("first", "realistic 14 tasks, first apply (host reset before each run), lint cached", one,
                      homelab, before=reset_hosts),
        "cold": Case("cold", "realistic 14 tasks, nothing to change, lint cold (edited playbook)", one, edited,
                     cold_lint=True),
        "fleet": Case("fleet", f"realistic 14 tasks on {len(names)} hosts, nothing to change, lint cached",
                      fleet_inventory(names, tmp / "fleet.yml"), homelab),
        "mitogen": Case("mitogen", "realistic 14 tasks, nothing to change: Ansible's strategies", one, homelab,
                        other="bare, mitogen_linear strategy", mitogen=True),
    }
    for name in wanted:
        case = cases[name]
        if name in ("cron", "change", "cold", "fleet", "mitogen"):
            bench.bare(case, [])  # the playbook applied once: from here on there is nothing to change
        for i in range(rounds + 1):  # round 0 warms the page cache, the snapshot store and the lint cache
            a, b = bench.one_round(case, i)
            print(f"{name} round {i}{' (warm-up)' if not i else ''}: {case.baseline} {a.wall:.2f}s "
                  f"(cpu {a.cpu:.2f}s), {case.other} {b.wall:.2f}s (cpu {b.cpu:.2f}s)", flush=True)
            if i:
                case.rows.append((a, b))
        report(case)


if __name__ == "__main__":
    main()
