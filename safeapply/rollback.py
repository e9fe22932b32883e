"""Put a host back as it was before a run: files, units, containers, (optionally) packages; then check.

Order: restore the snapshot's roots -> `systemctl daemon-reload` -> each unit back to its pre-run state
(stop what the run started, start what it stopped, enable/disable, restart those whose config came back
or that the run restarted) -> the run's containers back (created removed, stopped started, replaced put back;
one the run cannot attribute is left alone and reported in `containers_left`) -> packages
reported (reverted with `rollback_packages`) -> rescan and compare with the pre-run scan.

The snapshot store is reached through `SnapshotOps` (restore + diff), so this module does not care how
snapshots are kept.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import PurePosixPath
from typing import Any, Protocol

from safeapply import remote
from safeapply.compare import on_demand, state_diff, units_of
from safeapply.errors import SafeapplyError
from safeapply.probe.model import Container
from safeapply.scan import HostState, scan_host
from safeapply.transport.base import Transport


class SnapshotOps(Protocol):
    def restore(self, transport: Transport, snapshot_id: str) -> list[str]:
        """Restore the roots; return the paths that changed."""

    def diff(self, transport: Transport, snapshot_id: str) -> list[str]:
        """What differs on the live host from the snapshot (empty: identical)."""


@dataclass
class RollbackReport:
    host: str
    snapshot: str
    restored_paths: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)  # "stop web.service", "docker rm -f x", ...
    packages: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)  # what still differs after the rollback
    # changed during the run by somebody else, left alone: {name, id, engine, why}
    containers_left: list[dict[str, str]] = field(default_factory=list)

    @property
    def restored(self) -> bool:
        return not self.errors and not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "snapshot": self.snapshot, "outcome": self.outcome,
                "restored_paths": self.restored_paths, "actions": self.actions, "packages": self.packages,
                "errors": self.errors, "differences": self.differences, "containers_left": self.containers_left}

    @property
    def outcome(self) -> str:
        return "restored" if self.restored else "differs"


def rollback_host(transport: Transport, snapshot_id: str, before: HostState, ops: SnapshotOps,
                  *, apt_offset: int | None = None, rollback_packages: bool = False,
                  tasks_since: float | None = None, ours: frozenset[str] | None = None,
                  containers: frozenset[str] | None = None, tasks_mark: str = "") -> RollbackReport:
    """Roll one host back to `before` (its pre-run scan) and `snapshot_id`; never raises for a step.

    `ours`: the units the run's plan names. A unit that a timer which existed before the run started meanwhile
    (apt-daily-upgrade mid-dpkg, certbot), or a login session's user manager, is someone else's unless the plan
    names it or the run wrote its unit file: left alone, and not counted as a difference. None: every new unit
    counts as the run's.

    `containers`: the names and IDs the run's plan (`ContainerOp`) and its task results name. A container is the
    run's when one of those names it or it runs under a unit of the run (a quadlet the run wrote); any other one
    created, stopped, started or removed meanwhile is left alone, reported in `containers_left` and not counted
    as a difference. None: every container change counts as the run's.

    `tasks_since` (the controller's time.time() when apply began): first stop what the run left running on
    the host — a task cut short by Ctrl-C, an `async` job — so that nothing changes it after the restore;
    `tasks_mark`: the run's mark on its module processes (`SAFEAPPLY_RUN`, set by apply: found also with SSH
    pipelining, which leaves no ansible-tmp path)."""
    rep = RollbackReport(transport.name, snapshot_id)
    if tasks_since is not None:
        _step(rep, "stop the run's tasks", lambda: _stop_tasks(transport, rep, tasks_since, tasks_mark))
    _step(rep, "restore files", lambda: rep.restored_paths.extend(ops.restore(transport, snapshot_id)))
    _step(rep, "daemon-reload", lambda: _systemctl(transport, rep, "daemon-reload"))
    now = _scan(rep, transport)
    others: frozenset[str] = frozenset()
    if now is not None:
        written = written_units(now, rep.restored_paths)
        if ours is not None:
            others = others_units(before, now, ours | written)
        if containers is not None:
            rep.containers_left = containers_left(before, now, containers, (ours or frozenset()) | written)
        argvs = [["systemctl", verb, unit] for verb, unit in unit_actions(before, now, rep.restored_paths, others)]
        left = frozenset(c["id"] for c in rep.containers_left)
        for argv in argvs + container_actions(before, now, left):
            _step(rep, " ".join(argv), partial(_run, transport, rep, argv))
    if apt_offset is not None:
        _step(rep, "packages", lambda: _packages(transport, rep, apt_offset, rollback_packages))
    check_restored(rep, transport, snapshot_id, before, ops, others, frozenset(c["name"] for c in rep.containers_left))
    return rep


def files_restored(rep: RollbackReport) -> bool:
    """The roots were put back (whatever else still differs): a dead-man's switch armed around the rollback has
    nothing left to finish and is disarmed; else (the restore failed or the host could not be reached) it stays
    armed and restores the host itself."""
    return not any(e.startswith(("restore files:", "connect:")) for e in rep.errors)


SETTLE_STEPS = (0.5, 1.0, 1.5, 2.0)  # rescans until units, ports and containers match: about 5 s at the most


def check_restored(rep: RollbackReport, transport: Transport, snapshot_id: str, before: HostState,
                   ops: SnapshotOps, others: frozenset[str] = frozenset(),
                   other_containers: frozenset[str] = frozenset()) -> None:
    """Rescan and diff the roots: `rep.differences` empty means the host is as before (somebody else's units and
    containers aside). A state that differs is scanned again a few times (SETTLE_STEPS): a service the rollback
    started again may take a moment to listen, a container to come up."""
    try:
        rep.differences += [f"file {p}" for p in ops.diff(transport, snapshot_id)]
    except SafeapplyError as e:
        rep.errors.append(f"snapshot diff: {e}")
    for wait in (*SETTLE_STEPS, None):  # a service or container the rollback started may bind its port later
        after = _scan(rep, transport)
        left = state_diff(before, after, others, other_containers) if after is not None else []
        if not left or wait is None:
            rep.differences += left
            return
        time.sleep(wait)


def _step(rep: RollbackReport, what: str, fn: Callable[[], object]) -> None:
    try:
        fn()
    except SafeapplyError as e:
        rep.errors.append(f"{what}: {e}")


def _scan(rep: RollbackReport, transport: Transport) -> HostState | None:
    try:
        return scan_host(transport)
    except SafeapplyError as e:
        rep.errors.append(f"rescan: {e}")
        return None


def _systemctl(transport: Transport, rep: RollbackReport, *args: str) -> None:
    _run(transport, rep, ["systemctl", *args])


def _run(transport: Transport, rep: RollbackReport, argv: list[str]) -> None:
    res = transport.run(argv, sudo=True, timeout=120)
    if argv[:2] != ["systemctl", "reset-failed"]:  # "not loaded" after a stop is success
        res.check()
    if argv[:2] != ["systemctl", "daemon-reload"]:
        rep.actions.append(" ".join(argv))


# ---- the run's own task processes ------------------------------------------------------------------

def _stop_tasks(transport: Transport, rep: RollbackReport, since: float, mark: str) -> None:
    """Stop what the run left running (`safeapply.target.tasks`: its marked processes, and ansible-tmp-<time>
    processes since `since`)."""
    args = [repr(since), mark] if mark else [repr(since)]
    n = int(remote.call(transport, "tasks.stop", args, sudo=True, timeout=60).strip() or 0)
    if n:
        rep.actions.append(f"stopped {n} process(es) the run left running")


# ---- packages: from apt's own log (/var/log/apt/history.log) -----------------------------------------

APT_LOG = "/var/log/apt/history.log"


def apt_log_offset(transport: Transport) -> int | None:
    """Before the run: the size of apt's history log (None: no apt on this host)."""
    res = transport.run(["stat", "-c", "%s", APT_LOG], sudo=True, timeout=30)
    if res.ok:
        return int(res.text.strip() or 0)
    return 0 if transport.run(["sh", "-c", "command -v apt-get"], timeout=30).ok else None


def parse_apt_history(text: str) -> list[dict[str, str]]:
    """Install/Upgrade/Downgrade/Remove/Purge lines -> [{action, package, old, new}] in log order."""
    out: list[dict[str, str]] = []
    for line in text.splitlines():
        action, _, rest = line.partition(": ")
        if action not in ("Install", "Upgrade", "Downgrade", "Remove", "Purge", "Reinstall"):
            continue
        for pkg, versions in re.findall(r"([^\s,()]+) \(([^)]*)\)", rest):
            vs = [v.strip() for v in versions.split(",") if v.strip() != "automatic"]
            old = vs[0] if action in ("Upgrade", "Downgrade", "Remove", "Purge") and vs else ""
            new = vs[-1] if action in ("Install", "Upgrade", "Downgrade", "Reinstall") and vs else ""
            out.append({"action": action.lower(), "package": pkg.split(":")[0], "old": old, "new": new})
    return out


def revert_argv(changes: list[dict[str, str]]) -> list[list[str]]:
    """apt-get commands that undo the changes: remove what was installed, pin back what was changed."""
    remove = sorted({c["package"] for c in changes if c["action"] == "install"})
    back = sorted({f"{c['package']}={c['old']}" for c in changes
                   if c["action"] in ("upgrade", "downgrade", "remove", "purge") and c["old"]})
    env = ["env", "DEBIAN_FRONTEND=noninteractive"]
    cmds = [[*env, "apt-get", "remove", "-y", *remove]] if remove else []
    if back:
        cmds.append([*env, "apt-get", "install", "-y", "--allow-downgrades", *back])
    return cmds


def _packages(transport: Transport, rep: RollbackReport, offset: int, revert: bool) -> None:
    res = transport.run(["tail", "-c", f"+{offset + 1}", APT_LOG], sudo=True, timeout=60)
    rep.packages = parse_apt_history(res.text) if res.ok else []
    if revert:
        for argv in revert_argv(rep.packages):
            _run(transport, rep, argv)


# ---- what to do (pure) -------------------------------------------------------------------------------




_UNIT_PATH = re.compile(r"^/etc/systemd/system/(?:[^/]+\.(?:wants|requires)/)?([^/]+?)(?:\.d/[^/]+)?$")
_QUADLET_PATH = re.compile(r"^/etc/containers/systemd/(?:.+/)?([^/]+)\.container(?:\.d/[^/]+)?$")


def written_units(now: HostState, restored: list[str]) -> frozenset[str]:
    """Units whose unit file (or drop-in, or quadlet `.container` file) the restore put back or removed: the run
    wrote them."""
    paths = set(restored)
    named = {m.group(1) for p in restored if (m := _UNIT_PATH.match(p))}
    named |= {m.group(1) + ".service" for p in restored if (m := _QUADLET_PATH.match(p))}
    return frozenset(named | {u.name for u in now.units if u.fragment_path and u.fragment_path in paths})


def others_units(before: HostState, now: HostState, ours: frozenset[str]) -> frozenset[str]:
    """Units that are not the run's: a timer that was there before the run and the service it triggers (it may
    have fired meanwhile), and user managers of login sessions — unless the run named them or wrote them."""
    had = {u.name for u in before.units}
    out = set()
    for name in (had | {u.name for u in now.units}) - ours:
        timer = name.rsplit(".", 1)[0] + ".timer"
        if (timer in had and timer not in ours) or name.startswith(("user@", "user-runtime-dir@")):
            out.add(name)
    return frozenset(out)


def unit_actions(before: HostState, now: HostState, restored: list[str],
                 others: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """(verb, unit) pairs that return each unit to its pre-run state; new units in `others` are left alone."""
    old = units_of(before)
    cur = units_of(now, loaded_only=False)
    out: list[tuple[str, str]] = []
    for name, u in sorted(cur.items()):
        was = old.get(name)
        if name in others:
            continue  # somebody else's timer or session: not ours to stop, start or restart
        if was is None:
            if u.active in ("active", "activating", "reloading") or u.sub == "auto-restart":
                out.append(("stop", name))  # the run created and started it
                out.append(("reset-failed", name))  # a stop can race its own failing exit
            elif u.active == "failed":
                out.append(("reset-failed", name))
            continue
        out += _enable_actions(name, was.enabled, u.enabled)
        if on_demand(name, before, now):  # its socket starts it when needed; it may exit when idle
            if u.active == "active" and _config_restored(name, u, restored):
                out.append(("restart", name))
            continue
        running_before = was.active == "active"
        running_now = u.active in ("active", "activating", "reloading") and u.sub != "auto-restart"
        if running_before and (not running_now or u.active == "failed"):
            out.append(("restart", name))
        elif not running_before and (running_now or u.sub == "auto-restart"):
            out.append(("stop", name))
        elif running_before and (u.main_pid != was.main_pid or _config_restored(name, u, restored)):
            out.append(("restart", name))
        if u.active == "failed" and not was.failed:
            out.append(("reset-failed", name))
    for name, was in sorted(old.items()):
        if name not in cur and was.active == "active":
            out.append(("start", name))
    return out


def _enable_actions(name: str, was: str, now: str) -> list[tuple[str, str]]:
    if was == now or was not in ("enabled", "disabled", "masked"):
        return []
    if now == "masked":
        return [("unmask", name)] + ([("enable", name)] if was == "enabled" else [])
    return [({"enabled": "enable", "disabled": "disable", "masked": "mask"}[was], name)]


def _config_restored(name: str, unit: Any, restored: list[str]) -> bool:
    stem = name.rsplit(".", 1)[0].split("@")[0]
    names = {stem, stem.rstrip("d"), stem + "d"}
    for p in restored:
        if p == unit.fragment_path or p.startswith(f"/etc/systemd/system/{name}.d/"):
            return True
        parts = PurePosixPath(p).parts
        if len(parts) > 2 and parts[1] == "etc" and (parts[2] in names or PurePosixPath(p).stem in names):
            return True
    return False


def container_changes(before: HostState, now: HostState) -> list[tuple[Container, str]]:
    """(container, what happened to it) for each one that differs from the pre-run scan: created, stopped,
    started — as it is now — or removed — as it was."""
    old = {c.id: c for c in before.containers}
    out: list[tuple[Container, str]] = []
    for c in now.containers:
        was = old.get(c.id)
        if was is None:
            out.append((c, "created"))
        elif was.running != c.running:
            out.append((c, "stopped" if was.running else "started"))
    ids = {n.id for n in now.containers}
    return out + [(c, "removed") for c in before.containers if c.id not in ids]


def containers_left(before: HostState, now: HostState, named: frozenset[str],
                    units: frozenset[str]) -> list[dict[str, str]]:
    """Containers created, stopped, started or removed during the run that the run cannot attribute: neither its
    plan nor its task results name them (by name or ID) and they do not run under one of its units (`units`).
    Another run, a user, a timer or `podman auto-update` did it: rollback leaves them alone and reports them."""
    return [{"name": c.name, "id": c.id, "engine": c.engine,
             "why": f"{what} during the run; neither the plan nor a task of this run names it"}
            for c, what in container_changes(before, now) if not _attributed(c, named, units)]


def _attributed(c: Container, named: frozenset[str], units: frozenset[str]) -> bool:
    if c.name in named or c.id in named or (c.unit and c.unit in units):
        return True
    return any(len(n) >= 12 and c.id.startswith(n) for n in named)  # a short ID on a task's command line


def container_actions(before: HostState, now: HostState, left: frozenset[str] = frozenset()) -> list[list[str]]:
    """Containers back to their pre-run state: remove those the run created, start those it stopped, stop those
    it started; then recreate those it removed or replaced (same name, new image) — podman only (`_recreate`).
    Containers whose ID is in `left` are somebody else's: untouched."""
    verbs = {"created": ["rm", "-f"], "stopped": ["start"], "started": ["stop"]}
    changes = [(c, what) for c, what in container_changes(before, now) if c.id not in left]
    out = [[c.engine, *verbs[what], c.id] for c, what in changes if what != "removed"]
    return out + [argv for c, what in changes if what == "removed" for argv in _recreate(c)]


def _recreate(was: Container) -> list[list[str]]:
    """podman keeps the command line that created a container (CreateCommand): create it again from it, with the
    old image's ID in place of its name (the name may point to a new image now), and start it if it ran. Docker
    keeps no such command: a removed docker container is reported by the rescan, not recreated."""
    argv = list(was.create_command)
    if was.engine != "podman" or len(argv) < 3 or argv[1] not in ("run", "create") or not was.image_id:
        return []
    at = next((i for i, a in enumerate(argv) if i > 1 and _same_image(a, was.image, was.image_id)), None)
    if at is None:
        return []
    argv[at] = was.image_id
    create = ["podman", "create"] + [a for a in argv[2:at] if a not in ("-d", "--detach")
                                     and not a.startswith("--detach=")] + argv[at:]
    return [create] + ([["podman", "start", was.name]] if was.running else [])


def _same_image(arg: str, image: str, image_id: str) -> bool:
    """Is this argument the image (by a name as written, short or qualified, or by ID)?"""
    def norm(ref: str) -> str:
        ref = ref.removeprefix("docker.io/").removeprefix("library/")
        return ref if ":" in ref.rsplit("/", 1)[-1] or "@" in ref else ref + ":latest"

    if len(arg) >= 12 and image_id.startswith(arg.removeprefix("sha256:")):
        return True
    return bool(image) and not arg.startswith("-") and norm(arg) == norm(image)
