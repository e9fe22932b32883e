"""The dead-man's switch on the target, as root. Entries (`deadman.<op>`):

* `arm` (config JSON on stdin): refuse (`{"armed": false, "blocked": [...]}`) while another run's switch is
  armed on this host and has not fired (it would restore on top of this run); else keep the config under
  STATE/<run>/, save the firewall ruleset, write a
  persistent timer+service pair under /usr/local/lib/systemd/system (not /etc: restoring /etc would delete
  them), enable and start the timer. The controller sends a *duration* (`deadline_s`), never a time: the
  timer counts it on this host's own monotonic clock, so no clock (the controller's, or this host's wall
  clock set or jumped by a playbook's NTP) moves it. Two monotonic triggers, the earlier wins:
  `OnStartupSec=` (the exact deadline, counted from the service manager's start: a `daemon-reload` does not
  move it) and `OnActiveSec=deadline_s` (counted from the timer's start: after a reboot the timer starts at
  boot, so the host restores itself `deadline_s` after it came back). The service runs this installed
  package (`python3 <version>.pyz deadman.fire RUN`), which is kept as long as a service names it.
  Answers with this host's wall-clock time (the controller measures the skew) and the seconds remaining.
* `extend RUN SECONDS`: restart the count at SECONDS from now (a keepalive while a long apply runs).
* `fire RUN` (what the timer's service runs, with no controller): stop what the run's Ansible is running on
  the host (its marked processes, or those under `ansible-tmp-<time>` directories since arm: `tasks.py`),
  restore the pre-run snapshot with the host's own restore program, daemon-reload, restore the firewall, restart sshd,
  networking and the units the run touched, write STATE/<run>/fired.json, then remove its own units. When
  the restore failed, the host's config may be half the run's: networking and the units are not restarted,
  and sshd only if `sshd -t` accepts its config (the running sshd is kept otherwise).
  First it writes STATE/<run>/fence: every module command of the run's Ansible checks it first (see
  safeapply/ansible_callbacks/safeapply_run.py) and refuses to start (the task fails, Ansible drops the
  host), so a task Ansible sends later (the host is reachable again after the restore) changes nothing;
  the fence stays with the fired record (a later run has another id).
* `disarm RUN`: stop and remove the timer and service; report a fired record if it fired already.
* `status RUN`: the config and fired record, if any, and the seconds remaining before it fires as systemd
  counts them (`remaining_s`, None when not armed): what the controller waits for, not its own clock.

Prints one JSON document on stdout. Errors: kind `deadman` (exit 3).
"""

import contextlib
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional

from . import layout, tasks
from .errors import TargetError

STATE = layout.DEADMAN_DIR
UNIT_DIR = layout.UNIT_DIR
WANTS = layout.TIMERS_WANTS
STAMPS = layout.TIMER_STAMPS
RUN_RE = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
Doc = Dict[str, Any]


class Fail(TargetError):
    def __init__(self, message: str) -> None:
        super().__init__("deadman", message)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def iso(t: datetime.datetime) -> str:
    return t.isoformat(timespec="seconds")


def unit_name(run: str) -> str:
    if not RUN_RE.match(run):
        raise Fail(f"bad run id {run!r}")
    return "safeapply-deadman-" + run


def paths(run: str) -> Dict[str, str]:
    u = unit_name(run)
    return {"state": os.path.join(STATE, run), "timer": os.path.join(UNIT_DIR, u + ".timer"),
            "service": os.path.join(UNIT_DIR, u + ".service"), "wants": os.path.join(WANTS, u + ".timer"),
            "stamp": os.path.join(STAMPS, "stamp-" + u + ".timer"), "unit": u}


def sh(argv: List[str], stdin: Optional[bytes] = None, timeout: float = 300) -> Doc:
    """Run a command; never raises. The record keeps rc and the tails of its output."""
    try:
        p = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout, check=False)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        rc, out, err = 127, b"", str(e).encode()
    return {"argv": argv, "rc": rc, "stdout": out.decode("utf-8", "replace")[-4000:],
            "stderr": err.decode("utf-8", "replace")[-2000:]}


def write(path: str, data: str, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def read_json(path: str) -> Optional[Doc]:
    try:
        with open(path) as f:
            doc: Doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc


def timer_text(run: str, seconds: float, since_startup_ms: int) -> str:
    """Monotonic triggers only (no OnCalendar): the deadline is `seconds` on this host's own clock."""
    secs = max(1, round(seconds))
    return (f"[Unit]\nDescription=safeapply dead-man's switch for run {run} (restores the host {secs} s after "
            f"it was armed or last extended, unless disarmed)\n\n[Timer]\nOnStartupSec={since_startup_ms}ms\n"
            f"OnActiveSec={secs}s\nAccuracySec=1s\nUnit={unit_name(run)}.service\n\n[Install]\n"
            "WantedBy=timers.target\n")


def manager_started_ms() -> int:
    """When the service manager started, in ms of CLOCK_MONOTONIC: OnStartupSec= counts from there."""
    out = str(must(systemctl("show", "-p", "UserspaceTimestampMonotonic", "--value"))["stdout"]).strip()
    return int(out or 0) // 1000


TIMESPAN = re.compile(r"(\d+(?:\.\d+)?)(month|min|ms|us|y|w|d|h|s)")
UNITS = {"y": 31557600.0, "month": 2629800.0, "w": 604800.0, "d": 86400.0, "h": 3600.0, "min": 60.0, "s": 1.0,
         "ms": 1e-3, "us": 1e-6}


def parse_timespan(text: str) -> Optional[float]:
    """systemd's "3h 21min 41.959100s" -> seconds; None for an empty or zero span."""
    total = sum(float(n) * UNITS[u] for n, u in TIMESPAN.findall(text))
    return total or None


def remaining(unit: str) -> Optional[float]:
    """Seconds until the timer fires as systemd counts them (its next monotonic elapse), None if not waiting."""
    res = systemctl("show", "-p", "NextElapseUSecMonotonic", "--value", unit)
    at = parse_timespan(str(res["stdout"]).strip()) if res["rc"] == 0 else None
    return None if at is None else round(max(0.0, at - time.monotonic()), 1)


def set_deadline(cfg: Doc, seconds: float) -> int:
    """The deadline `seconds` from now on this host: its wall-clock time (for people and the record only)
    and the OnStartupSec= value, in ms since the service manager started."""
    cfg["deadline_s"] = seconds
    cfg["deadline"] = iso(now() + datetime.timedelta(seconds=seconds))
    return int(time.monotonic() * 1000) - manager_started_ms() + int(seconds * 1000)


def service_text(run: str, python: str, prog: str) -> str:
    return (f"[Unit]\nDescription=safeapply dead-man's switch for run {run}: restore the pre-run state\n\n"
            f"[Service]\nType=oneshot\nExecStart={python} {prog} deadman.fire {run}\nTimeoutStartSec=900\n")


def systemctl(*args: str) -> Doc:
    return sh(["systemctl", *args])


def must(res: Doc) -> Doc:
    if res["rc"] != 0:
        argv = " ".join(str(a) for a in res["argv"])
        raise Fail(f"`{argv}` exited {res['rc']}: {str(res['stderr']).strip()[-300:]}")
    return res


# ---- arm / extend -------------------------------------------------------------------------------------

def save_firewall(state: str) -> Dict[str, str]:
    saved = {}
    if shutil.which("nft"):
        r = sh(["nft", "list", "ruleset"])
        if r["rc"] == 0:
            write(os.path.join(state, "nft.rules"), "flush ruleset\n" + str(r["stdout"]), 0o600)
            saved["nft"] = "saved"
        else:
            saved["nft"] = "not saved: " + str(r["stderr"]).strip()[-200:]
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool + "-save") and shutil.which(tool + "-restore"):
            r = sh([tool + "-save"])
            if r["rc"] == 0:
                write(os.path.join(state, tool + ".rules"), str(r["stdout"]), 0o600)
                saved[tool] = "saved"
            else:
                saved[tool] = "not saved: " + str(r["stderr"]).strip()[-200:]
    return saved


def unit_states(units: List[str]) -> Dict[str, str]:
    return {u: str(systemctl("is-active", u)["stdout"]).strip() or "unknown" for u in units}


UNIT_RE = re.compile(r"^safeapply-deadman-([A-Za-z0-9_.-]{1,80})\.timer$")


def armed_elsewhere(run: str) -> List[Doc]:
    """Other runs' switches armed on this host that have not fired: each would restore its snapshot on top
    of whatever runs here later. [{"run_id", "deadline", "armed_at"}], oldest deadline first."""
    out = []
    for name in sorted(os.listdir(UNIT_DIR)) if os.path.isdir(UNIT_DIR) else []:
        m = UNIT_RE.match(name)
        if not m or m.group(1) == run:
            continue
        state = os.path.join(STATE, m.group(1))
        if os.path.exists(os.path.join(state, "fired.json")):
            continue
        cfg = read_json(os.path.join(state, "config.json")) or {}
        out.append({"run_id": m.group(1), "deadline": cfg.get("deadline"), "armed_at": cfg.get("armed_at")})
    return sorted(out, key=lambda d: str(d.get("deadline")))


def op_arm(_args: List[str]) -> Doc:
    clock = time.time()  # first: the controller measures the skew against the middle of its round trip
    cfg = json.loads(sys.stdin.read())
    run = cfg["run_id"]
    p = paths(run)
    if os.path.exists(p["timer"]):
        raise Fail(f"run {run} is already armed on this host")
    blocked = armed_elsewhere(run)
    if blocked:
        return {"armed": False, "blocked": blocked}
    os.makedirs(p["state"], mode=0o700, exist_ok=True)
    prog = layout.installed_at()
    cfg.pop("src", None)  # sent by controllers before the package was installed on hosts
    cfg["program"] = prog
    cfg["firewall"] = save_firewall(p["state"])
    cfg["unit_states"] = unit_states(cfg.get("units", []))
    cfg["armed_at"] = iso(now())
    cfg["boot_id"] = boot_id()
    seconds = float(cfg["deadline_s"])
    since_startup = set_deadline(cfg, seconds)
    write(os.path.join(p["state"], "config.json"), json.dumps(cfg, indent=1, sort_keys=True), 0o600)
    write(p["service"], service_text(run, sys.executable or "/usr/bin/python3", prog))
    write(p["timer"], timer_text(run, seconds, since_startup))
    os.makedirs(WANTS, mode=0o755, exist_ok=True)
    if not os.path.lexists(p["wants"]):
        os.symlink(p["timer"], p["wants"])
    must(systemctl("daemon-reload"))
    must(systemctl("start", p["unit"] + ".timer"))
    return {"armed": True, "unit": p["unit"] + ".timer", "state": p["state"], "config": cfg, "clock": clock,
            "remaining_s": remaining(p["unit"] + ".timer")}


def op_extend(args: List[str]) -> Doc:
    run, seconds = args[0], float(args[1])
    p = paths(run)
    cfg = read_json(os.path.join(p["state"], "config.json"))
    if cfg is None or not os.path.exists(p["timer"]) or os.path.exists(os.path.join(p["state"], "fired.json")):
        raise Fail(f"run {run} is not armed on this host (fired or disarmed already)")
    since_startup = set_deadline(cfg, seconds)
    write(os.path.join(p["state"], "config.json"), json.dumps(cfg, indent=1, sort_keys=True), 0o600)
    write(p["timer"], timer_text(run, seconds, since_startup))
    must(systemctl("daemon-reload"))
    must(systemctl("restart", p["unit"] + ".timer"))
    return {"extended": True, "deadline": cfg["deadline"], "deadline_s": seconds,
            "remaining_s": remaining(p["unit"] + ".timer")}


def boot_id() -> str:
    """The kernel's boot id and PID 1's start time: a container that rebooted has a new PID 1."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            kernel = f.read().strip()
        with open("/proc/1/stat") as f:
            start = f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""
    return kernel + "/" + start


# ---- fire ---------------------------------------------------------------------------------------------

def exists(unit: str) -> bool:
    out = str(systemctl("show", "-p", "LoadState", "--value", unit)["stdout"]).strip()
    return out not in ("", "not-found")


def restore_firewall(state: str, steps: List[Doc]) -> None:
    rules = os.path.join(state, "nft.rules")
    if os.path.exists(rules):
        steps.append(dict(sh(["nft", "-f", rules]), step="firewall"))
    for tool in ("iptables", "ip6tables"):
        f = os.path.join(state, tool + ".rules")
        if os.path.exists(f):
            with open(f, "rb") as fh:
                steps.append(dict(sh([tool + "-restore"], stdin=fh.read()), step="firewall"))


def restart_units(cfg: Doc, steps: List[Doc], restored: bool = True) -> None:
    """sshd first (it is what lets a person in), then networking, then the units the run touched, each
    back to its pre-run state: active before -> restarted, inactive before -> stopped. After a failed
    restore only sshd, and only if its config passes `sshd -t`: a restart must never take the way in away."""
    ssh = next((u for u in ("ssh.service", "sshd.service") if exists(u)), None)
    if not restored:
        if ssh:
            test = sh([shutil.which("sshd") or "/usr/sbin/sshd", "-t"])
            if test["rc"] == 0:
                steps.append(dict(systemctl("restart", ssh), step="sshd"))
            else:
                steps.append(dict(test, step="sshd", skipped="the restore failed and `sshd -t` rejects the "
                                  "config: the running sshd is kept"))
        steps.append({"step": "networking", "rc": 0, "skipped": "the restore failed: networking and the run's "
                      "units are not restarted on a half-restored config"})
        return
    if ssh:
        steps.append(dict(systemctl("restart", ssh), step="sshd"))
    for u in ("networking.service", "systemd-networkd.service", "NetworkManager.service"):
        if exists(u) and str(systemctl("is-active", u)["stdout"]).strip() == "active":
            steps.append(dict(systemctl("restart", u), step="networking"))
    before = cfg.get("unit_states") or {}
    assert isinstance(before, dict)
    for u, was in sorted(before.items()):
        if u in ("ssh.service", "sshd.service"):
            continue
        verb = "restart" if was in ("active", "activating", "reloading") else "stop"
        steps.append(dict(systemctl(verb, u), step="unit"))


def stop_the_runs_tasks(cfg: Doc, steps: List[Doc]) -> None:
    """What the run's Ansible is running here (a task cut short, an async job) must not change the host
    after the restore: its processes (ansible-tmp-<controller time> since the arm, or the run's SAFEAPPLY_RUN
    mark, which holds with pipelining) are stopped first."""
    since = cfg.get("tasks_since")
    if since is None:
        return
    found = tasks.the_runs(tasks.processes(), float(since), str(cfg.get("run_id") or ""))  # also its mark
    tasks.stop_all(found)
    steps.append({"step": "stop-tasks", "rc": 0, "argv": [], "stopped": len(found)})


def restore_snapshot(cfg: Doc, steps: List[Doc]) -> Optional[Doc]:
    sid = cfg.get("snapshot_id")
    if not sid:
        steps.append({"step": "restore", "rc": 0, "skipped": "no snapshot id given at arm time"})
        return None
    prog = os.path.join(str(cfg.get("base") or layout.BASE), layout.RESTORE_PROGRAM)
    r = sh([sys.executable or "/usr/bin/python3", prog, str(sid)], timeout=600)
    report = None
    if r["rc"] == 0:
        try:
            report = json.loads(str(r["stdout"]))
            r["stdout"] = f"{len(report.get('changes', []))} changes"
        except ValueError:
            pass
    steps.append(dict(r, step="restore"))
    return report


def op_fire(args: List[str]) -> Doc:
    run = args[0]
    p = paths(run)
    fired_path = os.path.join(p["state"], "fired.json")
    done = read_json(fired_path)
    if done is not None:
        return done
    cfg = read_json(os.path.join(p["state"], "config.json"))
    if cfg is None:
        raise Fail(f"no config for run {run} under {STATE}")
    started = now()
    steps: List[Doc] = []
    write(layout.fence_path(run), iso(started) + "\n", 0o600)  # first: no module of the run starts any more
    stop_the_runs_tasks(cfg, steps)  # then: what started before is stopped
    report = restore_snapshot(cfg, steps)
    restored = all(s.get("rc") == 0 for s in steps if s.get("step") == "restore")
    steps.append(dict(systemctl("daemon-reload"), step="daemon-reload"))
    restore_firewall(p["state"], steps)
    restart_units(cfg, steps, restored)
    rec = {"run_id": run, "snapshot_id": cfg.get("snapshot_id"), "deadline": cfg.get("deadline"),
           "armed_at": cfg.get("armed_at"), "fired_at": iso(started), "finished": iso(now()),
           "rebooted_since_arm": boot_id() != cfg.get("boot_id"),
           "ok": all(s.get("rc") == 0 for s in steps), "steps": steps,
           "restored": (report or {}).get("changes", []) if report else []}
    write(fired_path, json.dumps(rec, indent=1, sort_keys=True), 0o600)
    systemctl("stop", p["unit"] + ".timer")  # fired by hand (or by its timer): it must not fire again
    remove_units(p)
    return rec


def remove_units(p: Dict[str, str]) -> None:
    for k in ("wants", "timer", "service", "stamp"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p[k])
    systemctl("daemon-reload")


# ---- disarm / status ----------------------------------------------------------------------------------

def op_disarm(args: List[str]) -> Doc:
    run = args[0]
    p = paths(run)
    systemctl("stop", p["unit"] + ".timer")
    for _ in range(900):  # it may be firing right now: let it finish rather than cut a restore in half
        state = str(systemctl("is-active", p["unit"] + ".service")["stdout"]).strip()
        if state not in ("activating", "deactivating", "reloading"):
            break
        time.sleep(1)
    remove_units(p)
    fired = read_json(os.path.join(p["state"], "fired.json"))
    if fired is None:
        shutil.rmtree(p["state"], ignore_errors=True)
    return {"disarmed": fired is None, "fired": fired}


def op_status(args: List[str]) -> Doc:
    p = paths(args[0])
    armed = os.path.exists(p["timer"])
    fired = read_json(os.path.join(p["state"], "fired.json"))
    return {"armed": armed, "config": read_json(os.path.join(p["state"], "config.json")), "fired": fired,
            "remaining_s": remaining(p["unit"] + ".timer") if armed and fired is None else None,
            "clock": time.time()}


def _run(op: Callable[[List[str]], Doc], args: List[str]) -> int:
    """One JSON document on stdout; any failure of the host's tools is this program's one error line."""
    os.umask(0o022)
    try:
        out = op(args)
    except (OSError, KeyError, ValueError, IndexError) as e:
        raise Fail(str(e)) from e
    sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")
    return 0


def arm(args: List[str]) -> int:
    return _run(op_arm, args)


def extend(args: List[str]) -> int:
    return _run(op_extend, args)


def fire(args: List[str]) -> int:
    return _run(op_fire, args)


def disarm(args: List[str]) -> int:
    return _run(op_disarm, args)


def status(args: List[str]) -> int:
    return _run(op_status, args)
