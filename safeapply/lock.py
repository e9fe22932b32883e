"""Per-host locks, so that two runs never interleave on one host: one on the controller, one on the target.

Controller: flock(2) on `state_dir()/locks/<host>.lock` — released by the kernel if we die.
Target: an atomic `mkdir /run/safeapply/lock` holding an owner file (run id, controller, pid), by the
`lock.*` entries of the on-host package (`safeapply.target.lock`). /run is a tmpfs, so a reboot clears it;
a lock left by a dead process on the same controller is taken over, any other holder makes us stop with
LockedError (exit 4) naming who holds it. A stale lock is not taken over, and no switch is armed, while another
run's dead-man's switch is armed on the host and has not fired (it would restore on top of this run):
LockedError naming that run and the commands that resolve it (`stale_switch_error`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from safeapply import remote
from safeapply.config import file_name, private_dir, state_dir
from safeapply.errors import LockedError, SafeapplyError
from safeapply.target.layout import LOCK as TARGET_LOCK
from safeapply.transport.base import Transport


@contextmanager
def controller_lock(host: str, run_id: str, lock_dir: Path | None = None) -> Iterator[Path]:
    """Hold an exclusive flock for `host` on this controller for the duration of the block."""
    directory = private_dir(lock_dir or state_dir() / "locks")
    path = directory / f"{file_name(host)}.lock"
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    f: IO[str] = os.fdopen(fd, "r+")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = f.read().strip() or "another safeapply process"
            raise LockedError(
                f"{host}: another run holds the controller lock {path} ({holder})",
                "wait for it to finish; the lock is released when that process exits",
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"run {run_id}, pid {os.getpid()}")
        f.flush()
        yield path
    finally:
        f.close()  # closing the descriptor releases the flock


@contextmanager
def target_lock(transport: Transport, run_id: str, path: str = TARGET_LOCK) -> Iterator[None]:
    """Hold the lock directory on the target; refuse (LockedError) when another run holds it."""
    held = _acquire(transport, run_id, path, stale="")
    if held and _dead_here(held):
        held = _acquire(transport, run_id, path, stale=str(held.get("run_id", "")))
        armed = held.pop("armed", None)
        if isinstance(armed, list) and armed:
            raise stale_switch_error(transport.name, armed, f"not taking over the lock of dead run "
                                     f"{held.get('run_id', '?')}")
    if held:
        raise LockedError(
            f"{transport.name}: another run holds {path} on the target "
            f"(run {held.get('run_id', '?')} from {held.get('controller', '?')}, pid {held.get('pid', '?')})",
            f"wait for it to finish; if no run is active, remove {path} on {transport.name}",
        )
    try:
        yield
    finally:  # best effort: a lock left behind by a dead controller process is reclaimed by the next run here
        with contextlib.suppress(SafeapplyError):  # e.g. the run's connection died with a lockout
            remote.call(transport, "lock.release", [path, run_id], sudo=True, timeout=60)


def _acquire(transport: Transport, run_id: str, path: str, stale: str) -> dict[str, object]:
    """Try once; {} when acquired, else who holds it."""
    owner = {"run_id": run_id, "controller": socket.gethostname(), "pid": os.getpid()}
    doc = json.loads(remote.call(transport, "lock.acquire", [path, json.dumps(owner), stale], sudo=True, timeout=60))
    held: dict[str, object] = dict(doc["held"]) if not doc["acquired"] else {}
    if doc.get("armed"):
        held["armed"] = doc["armed"]
    return held


def stale_switch_error(host: str, armed: list[dict[str, object]], what: str) -> LockedError:
    """Another run's dead-man's switch is armed on `host` and has not fired: one line naming it and how to
    resolve it (see it; release it once the host is known to be as wanted; or let it fire at its deadline)."""
    first = armed[0]
    run = str(first.get("run_id", "?"))
    more = f" (and {len(armed) - 1} more)" if len(armed) > 1 else ""
    return LockedError(
        f"{host}: {what}: the dead-man's switch of run {run}{more} is armed there and has not fired "
        f"(it restores the host at {first.get('deadline', '?')})",
        f"see it with `safeapply deadman {run}`; release it with `safeapply deadman {run} --release "
        f"--host {host} -i INVENTORY`, or wait until it has fired",
    )


def _dead_here(held: dict[str, object]) -> bool:
    """A lock left by a process of this controller that no longer exists (killed with SIGKILL, say)."""
    pid = held.get("pid")
    if held.get("controller") != socket.gethostname() or not isinstance(pid, int) or not held.get("run_id"):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@contextmanager
def host_lock(transport: Transport, run_id: str, lock_dir: Path | None = None) -> Iterator[None]:
    """Controller lock, then target lock; released in reverse order."""
    with controller_lock(transport.name, run_id, lock_dir), target_lock(transport, run_id):
        yield
