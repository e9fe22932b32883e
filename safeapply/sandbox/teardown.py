"""Tear sandboxes down, also after a killed run: everything is found by its naming prefix."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from safeapply.sandbox import network
from safeapply.sandbox.paths import NETWORK_NETNS, SandboxPaths, base_dir, cgroup_dirs, prefix
from safeapply.sandbox.proc import alive, read_pid, wait_dead


def _cgroup_pids(d: Path) -> list[int]:
    pids: list[int] = []
    for procs in d.rglob("cgroup.procs") if d.exists() else []:
        with contextlib.suppress(OSError, ValueError):
            pids += [int(x) for x in procs.read_text().split()]
    return pids


def _kill_cgroups(dirs: list[Path]) -> None:
    for d in dirs:
        kill = d / "cgroup.kill"
        if kill.exists():
            with contextlib.suppress(OSError):
                kill.write_text("1")
        for pid in _cgroup_pids(d):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _rm_cgroups(dirs: list[Path]) -> None:
    for d in dirs:
        for _ in range(60):
            if not d.exists():
                break
            for sub in sorted((x for x in d.rglob("*") if x.is_dir()), key=lambda x: -len(x.parts)):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            with contextlib.suppress(OSError):
                d.rmdir()
            if d.exists():
                time.sleep(0.05)


def _mounts_under(path: Path) -> list[str]:
    out = []
    with open("/proc/self/mounts") as f:
        for line in f:
            target = line.split()[1].encode().decode("unicode_escape")
            if target == str(path) or target.startswith(str(path) + "/"):
                out.append(target)
    return sorted(out, key=len, reverse=True)


def clear_propagation(machine: str) -> None:
    """nspawn's propagation dir of a machine that was killed (SIGKILL, or its cgroup killed): unmount what is
    still mounted in it, then remove it. A leftover one with a mount in it makes the next boot of the same name
    fail ("Attempted to remove disk file system under /run/systemd/nspawn/propagate/...")."""
    prop = Path(f"/run/systemd/nspawn/propagate/{machine}")
    for target in _mounts_under(prop):
        if subprocess.run(["umount", target], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", target], capture_output=True, check=False)
    if prop.exists() and not _mounts_under(prop):  # never remove across a mount that is still there
        shutil.rmtree(prop, ignore_errors=True)


def down(name: str, fast: bool = False) -> None:
    """Stop one sandbox (orderly poweroff, SIGKILL of its cgroup as fallback) and remove all of it."""
    p = SandboxPaths(name)
    if p.dir.exists():
        (p.dir / "stop").touch()
    nspawn = read_pid(p.dir / "nspawn.pid")
    if nspawn and alive(nspawn):
        if not fast:
            os.kill(nspawn, signal.SIGTERM)  # nspawn turns it into an orderly guest poweroff
            wait_dead(nspawn, 10)
        if alive(nspawn):
            _kill_cgroups(cgroup_dirs(name))
            wait_dead(nspawn, 5)
    wrapper = read_pid(p.dir / "wrapper.pid")
    if wrapper and not wait_dead(wrapper, 2):
        os.kill(wrapper, signal.SIGKILL)
    _kill_cgroups(cgroup_dirs(name))
    _rm_cgroups(cgroup_dirs(name))
    for parent in cgroup_dirs():  # the prefix's parent goes when its last sandbox does
        with contextlib.suppress(OSError):
            parent.rmdir()
    for target in _mounts_under(p.merged):
        if subprocess.run(["umount", target], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", target], capture_output=True, check=False)
    clear_propagation(p.machine)
    network.detach(p.netns)  # its veth, and its network when it was the last sandbox on it
    subprocess.run(["ip", "netns", "del", p.netns], capture_output=True, check=False)
    shutil.rmtree(p.dir, ignore_errors=True)


def known_names() -> list[str]:
    hosts = base_dir() / "hosts"
    return sorted(d.name for d in hosts.iterdir()) if hosts.exists() else []


def _our_netns() -> list[str]:
    """Sandboxes' and networks' network namespaces of this prefix."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"{prefix()}-")]


def leftovers() -> list[str]:
    """Everything of this prefix still on the machine: netns (a network's holds its bridge and veths), mounts,
    cgroups, host dirs, processes."""
    left = [f"netns {n}" for n in _our_netns()]
    left += [f"mount {m}" for m in _mounts_under(base_dir())]
    for d in cgroup_dirs():
        if d.exists():
            left.append(f"cgroup {d}")
            left += [f"process {pid}" for pid in _cgroup_pids(d)]
    left += [f"sandbox dir {n}" for n in known_names()]
    return left


def down_all() -> list[str]:
    """Remove every sandbox of this prefix, including what a killed run left behind. Returns the names."""
    names = set(known_names()) | {n.removeprefix(f"{prefix()}-") for n in _our_netns()
                                  if not n.startswith(f"{prefix()}-{NETWORK_NETNS}")}
    for d in cgroup_dirs():
        if d.exists():
            names |= {x.name for x in d.iterdir() if x.is_dir()}
    for name in sorted(names):
        down(name, fast=True)
    _kill_cgroups(cgroup_dirs())
    _rm_cgroups(cgroup_dirs())
    for target in _mounts_under(base_dir()):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)
    network.prune(everything=True)
    return sorted(names)
