"""Stop what a run left running on the host (a task cut short by Ctrl-C, an `async` job) before a rollback
restores files under it: `tasks.stop SINCE` prints how many processes it stopped.

Ansible runs each module from `ansible-tmp-<controller time.time()>-<pid>-<random>` on the host, and async
jobs keep that path in their command line: every process whose command line names such a directory made at
or after SINCE, with all its descendants, is the run's. (With pipelining there is no such path.)
"""

import contextlib
import os
import re
import signal
import sys
import time
from typing import Dict, List, Set, Tuple

TMPDIR = re.compile(rb"/ansible-tmp-(\d+(?:\.\d+)?)-")


def processes(proc: str = "/proc") -> Dict[int, Tuple[bytes, int]]:
    """pid -> (command line, parent pid) for every process but this one."""
    me = os.getpid()
    out: Dict[int, Tuple[bytes, int]] = {}
    for d in os.listdir(proc):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open(os.path.join(proc, d, "cmdline"), "rb") as f:
                cmd = f.read()
            with open(os.path.join(proc, d, "stat")) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out[int(d)] = (cmd, ppid)
    return out


def the_runs(procs: Dict[int, Tuple[bytes, int]], since: float) -> Set[int]:
    """The processes of a run that began at `since`, and all their descendants."""
    found = {p for p, (c, _) in procs.items() if any(float(t) >= since for t in TMPDIR.findall(c))}
    while True:
        more = {p for p, (_, pp) in procs.items() if pp in found} - found
        if not more:
            return found
        found |= more


def stop_all(pids: Set[int], grace: float = 1.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in pids:
            with contextlib.suppress(OSError):
                os.kill(p, sig)
        if sig == signal.SIGTERM and pids:
            time.sleep(grace)


def stop(args: List[str]) -> int:
    found = the_runs(processes(), float(args[0]))
    stop_all(found)
    sys.stdout.write(f"{len(found)}\n")
    return 0
