"""Stop what a run left running on the host (a task cut short by Ctrl-C, an `async` job) before a rollback
restores files under it: `tasks.stop SINCE [MARK]` prints how many processes it stopped.

Two ways to know a run's processes (the mark, when given, is the only one used):
- MARK: safeapply puts `SAFEAPPLY_RUN=<mark>` in front of every module command of its run (see
  safeapply/ansible_callbacks/safeapply_mark.py): the shell that starts a module names it in its command line,
  and the module and everything it starts (an `async` job too) carry it in their environment. This holds with
  SSH pipelining, where no file on the host names the task.
- SINCE: without pipelining Ansible runs each module from `ansible-tmp-<controller time.time()>-<pid>-<random>`,
  and async jobs keep that path in their command line: a process whose command line names such a directory
  made at or after SINCE is the run's.
Every such process is stopped with all its descendants, except a container engine's own helpers (podman's
`conmon`, netavark's `aardvark-dns`): they inherit the mark from the task that ran `podman run`, but they are
the container's, and rollback removes or restarts containers through the engine (`podman rm -f` fails once
their conmon is gone).
"""

import contextlib
import os
import re
import signal
import sys
import time
from typing import Dict, List, NamedTuple, Set

TMPDIR = re.compile(rb"/ansible-tmp-(\d+(?:\.\d+)?)-")
MARK_NAME = b"SAFEAPPLY_RUN="
ENGINE_HELPERS = (b"conmon", b"aardvark-dns")  # a container's monitor, the containers' DNS: not a task


class Proc(NamedTuple):
    cmdline: bytes
    ppid: int
    environ: bytes = b""


def processes(proc: str = "/proc") -> Dict[int, Proc]:
    """pid -> its command line, parent pid and environment, for every process but this one."""
    me = os.getpid()
    out: Dict[int, Proc] = {}
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
        env = b""
        with contextlib.suppress(OSError), open(os.path.join(proc, d, "environ"), "rb") as f:
            env = f.read()
        out[int(d)] = Proc(cmd, ppid, env)
    return out


def _marked(p: Proc, mark: bytes) -> bool:
    if not mark:
        return False
    token = MARK_NAME + mark
    return token in p.environ.split(b"\0") or re.search(re.escape(token) + rb"(?![\w.-])", p.cmdline) is not None


def _engine_helper(p: Proc) -> bool:
    return os.path.basename(p.cmdline.split(b"\0", 1)[0]) in ENGINE_HELPERS


def the_runs(procs: Dict[int, Proc], since: float, mark: str = "") -> Set[int]:
    """The processes that carry the run's mark, and all their descendants, but not a container engine's
    helpers nor what runs under them (the containers). Without a mark (an older controller), those under an
    `ansible-tmp` directory made at or after `since`: that also catches another controller's Ansible, which is
    why a mark, when there is one, is the only test."""
    m = mark.encode()
    found = {pid for pid, p in procs.items() if not _engine_helper(p)
             and (_marked(p, m) if m else any(float(t) >= since for t in TMPDIR.findall(p.cmdline)))}
    while True:
        more = {pid for pid, p in procs.items() if p.ppid in found and not _engine_helper(p)} - found
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
    found = the_runs(processes(), float(args[0]), args[1] if len(args) > 1 else "")
    stop_all(found)
    sys.stdout.write(f"{len(found)}\n")
    return 0
