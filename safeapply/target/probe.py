"""The probe (`probe.collect`): gathers a host's raw facts in one round trip and prints one JSON document.

It does as little interpretation as possible: the controller parses everything with the pure functions in
`safeapply.probe.parse`, which are tested on captured output. It imports nothing but the standard library,
not even the rest of this package, so its source alone also runs (`python3 - < probe.py`); the controller
also calls its functions in-process to scan itself (`safeapply.scan.scan_local`).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Set, Union

PROBE_VERSION = 1
UNIT_PROPERTIES = (
    "Id", "LoadState", "ActiveState", "SubState", "UnitFileState", "MainPID", "NRestarts",
    "FragmentPath", "Listen", "ExecMainStatus", "Description", "StateChangeTimestampMonotonic",
)
UNIT_PATTERNS = ("*.service", "*.socket", "*.timer")
PROC_NET = ("tcp", "tcp6", "udp", "udp6")
LISTEN_STATES = {"tcp": "0A", "tcp6": "0A", "udp": "07", "udp6": "07"}
QUADLET_DIRS = ("/etc/containers/systemd", "/usr/share/containers/systemd")
QUADLET_SUFFIXES = (".container", ".pod", ".kube", ".network", ".volume")
CMD_TIMEOUT = 10
STOPPED_MAX = 10  # stopped containers whose logs and image ports a scan reads
LOG_MAX = 1000


def run(argv: List[str]) -> Dict[str, Any]:
    """Run a command: a dict with rc/out/err, or rc 127 when the program is not installed."""
    if shutil.which(argv[0]) is None:
        return {"rc": 127, "out": "", "err": argv[0] + ": not installed"}
    try:
        p = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=CMD_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"rc": 124, "out": "", "err": argv[0] + ": timed out"}
    return {"rc": p.returncode, "out": p.stdout.decode("utf-8", "replace"),
            "err": p.stderr.decode("utf-8", "replace")}


def read(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None


def systemd_units() -> Dict[str, Any]:
    return finish(start_systemd_units())


def start_systemd_units() -> "Union[subprocess.Popen[bytes], Dict[str, Any]]":
    """Start `systemctl show` (the slow part) so the /proc walk runs while systemd answers."""
    if not os.path.isdir("/run/systemd/system"):
        return {"rc": -1, "out": "", "err": "systemd is not running (no /run/systemd/system)"}
    argv = ["systemctl", "show", "--all", "--no-pager", "-p", ",".join(UNIT_PROPERTIES), "--", *UNIT_PATTERNS]
    if shutil.which(argv[0]) is None:
        return {"rc": 127, "out": "", "err": "systemctl: not installed"}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def finish(p: "Union[subprocess.Popen[bytes], Dict[str, Any]]") -> Dict[str, Any]:
    if isinstance(p, dict):
        return p
    try:
        out, err = p.communicate(timeout=CMD_TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return {"rc": 124, "out": "", "err": "systemctl: timed out"}
    return {"rc": p.returncode, "out": out.decode("utf-8", "replace"), "err": err.decode("utf-8", "replace")}


def listening_inodes(tables: Dict[str, Optional[str]]) -> Set[str]:
    inodes: Set[str] = set()
    for name, text in tables.items():
        for line in (text or "").splitlines()[1:]:
            f = line.split()
            if len(f) > 9 and f[3] == LISTEN_STATES[name]:
                inodes.add(f[9])
    inodes.discard("0")
    return inodes


def socket_owners(inodes: Set[str]) -> Dict[str, List[int]]:
    """inode -> [pid, ...] for the given socket inodes, by walking /proc/*/fd (root sees all)."""
    owners: Dict[str, List[int]] = {}
    if not inodes:
        return owners
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = "/proc/" + pid + "/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd_dir + "/" + fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                owners.setdefault(target[8:-1], [])
                if int(pid) not in owners[target[8:-1]]:
                    owners[target[8:-1]].append(int(pid))
    return owners


def process_info(pid: int) -> Dict[str, Any]:
    cmdline = read(f"/proc/{pid}/cmdline") or ""
    return {
        "comm": (read(f"/proc/{pid}/comm") or "").strip(),
        "cmdline": [a for a in cmdline.split("\0") if a],
        "cgroup": read(f"/proc/{pid}/cgroup") or "",
    }


def containers(engine: str) -> Dict[str, Any]:
    ids = run([engine, "ps", "-a", "-q", "--no-trunc"])
    if ids["rc"] != 0 or not ids["out"].split():
        return {"ps": ids, "inspect": None}
    inspect = run([engine, "inspect", *ids["out"].split()])
    return {"ps": ids, "inspect": inspect, "stopped": stopped_containers(engine, inspect)}


def stopped_containers(engine: str, inspect: Dict[str, Any]) -> Dict[str, Dict[str, str]]:
    """Why containers that are not running stopped: their last log lines, and the ports their image exposes
    (with the host's network those are host ports no publish option names). The most recent STOPPED_MAX."""
    try:
        found = json.loads(inspect["out"]) if inspect["rc"] == 0 else []
    except ValueError:
        return {}
    stopped = [c for c in found if isinstance(c, dict) and not (c.get("State") or {}).get("Running")]
    stopped.sort(key=lambda c: str((c.get("State") or {}).get("FinishedAt") or ""), reverse=True)
    out = {}
    for c in stopped[:STOPPED_MAX]:
        logs = run([engine, "logs", "--tail", "3", str(c.get("Id", ""))])
        image = run([engine, "image", "inspect", "--format", "{{json .Config.ExposedPorts}}", str(c.get("Image", ""))])
        out[str(c.get("Id", ""))] = {"logs": (logs["out"] + logs["err"])[-LOG_MAX:],
                                     "exposed": image["out"].strip() if image["rc"] == 0 else ""}
    return out


def quadlets() -> Dict[str, Optional[str]]:
    found: Dict[str, Optional[str]] = {}
    for d in QUADLET_DIRS:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for n in names:
            if n.endswith(QUADLET_SUFFIXES):
                found[d + "/" + n] = read(d + "/" + n)
    return found


def quadlet_images(files: Dict[str, Optional[str]]) -> Dict[str, str]:
    """The ports the images of host-network quadlet containers expose, by image: quadlet runs a container with
    `--rm`, so once it exited nothing else tells which host ports it wanted."""
    out: Dict[str, str] = {}
    for path, text in files.items():
        vals = {}
        for line in (text or "").splitlines() if path.endswith(".container") else ():
            key, sep, value = line.strip().partition("=")
            if sep:
                vals[key.strip()] = value.strip()
        image = vals.get("Image", "")
        if vals.get("Network") == "host" and image and image not in out:
            r = run(["podman", "image", "inspect", "--format", "{{json .Config.ExposedPorts}}", image])
            if r["rc"] == 0:
                out[image] = r["out"].strip()
    return out


def disk(path: str) -> Optional[Dict[str, int]]:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return {"free": st.f_bavail * st.f_frsize, "total": st.f_blocks * st.f_frsize}


def facts() -> Dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "os_release": read("/etc/os-release") or read("/usr/lib/os-release") or "",
        "kernel": os.uname().release,
        "init": (read("/proc/1/comm") or "").strip(),
        "systemd_running": os.path.isdir("/run/systemd/system"),
        "disk": {"/": disk("/"), "/var": disk("/var")},
        "bindv6only": (read("/proc/sys/net/ipv6/bindv6only") or "").strip(),
        "python": ".".join(str(v) for v in sys.version_info[:3]),
        "euid": os.geteuid(),
    }


def collect() -> Dict[str, Any]:
    mono = time.monotonic()  # CLOCK_MONOTONIC, systemd's *TimestampMonotonic clock; read before systemctl show
    units = start_systemd_units()
    tables = {name: read("/proc/net/" + name) for name in PROC_NET}
    owners = socket_owners(listening_inodes(tables))
    pids = sorted({p for ps in owners.values() for p in ps})
    found_quadlets = quadlets()
    return {
        "version": PROBE_VERSION,
        "monotonic_us": int(mono * 1e6),
        "units": finish(units),
        "proc_net": tables,
        "socket_owners": owners,
        "processes": {str(p): process_info(p) for p in pids},
        "containers": {e: containers(e) for e in ("docker", "podman")},
        "quadlets": found_quadlets,
        "quadlet_images": quadlet_images(found_quadlets),
        "facts": facts(),
    }


def main(args: Optional[List[str]] = None) -> int:
    sys.stdout.write(json.dumps(collect(), sort_keys=True))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    main()
