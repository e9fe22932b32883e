"""Run a playbook through ansible-runner -> ApplyResult. The only ansible_runner import in safeapply.

Everything comes from runner's structured results: its status and rc, the `playbook_on_stats` event
(per-host ok/changed/failed/unreachable/skipped) and per-task events. Output text is never parsed.

Ctrl-C and SIGTERM during a run cancel ansible-runner (through its cancel callback) instead of killing us
mid-way; the result then says `interrupted_by`, and `raise_if_interrupted()` turns that into the usual
KeyboardInterrupt / Terminated so that the caller's rollback context manager runs.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import ansible_runner
import psutil

from safeapply import ansible_context, signals
from safeapply.errors import ConfigError, Terminated, UsageError
from safeapply.redact import MASK, clean_terminal, is_secret, patterns, redact_text
from safeapply.task_containers import containers_named

_TASK_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
    "runner_item_on_failed": "failed",
}


@dataclass(frozen=True)
class TaskEvent:
    """One task result on one host, as it happens (for live progress)."""

    host: str
    task: str
    action: str
    status: str  # started | ok | changed | failed | unreachable | skipped | ignored | output
    message: str = ""  # one line; for `output`, Ansible's own text for the event (with -v)
    detail: str = ""  # a failure: msg, stderr, the tail of stdout, each failed loop item (redacted, capped)
    diff: str = ""  # a change with --diff or --check: the unified diff (redacted)
    item: str = ""  # the loop item's label, for a result of one item
    containers: tuple[str, ...] = ()  # names and IDs of containers the result names (`task_containers`)


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass
class ApplyResult:
    status: str  # successful | failed | canceled | timeout
    rc: int
    check: bool
    hosts: dict[str, HostStats] = field(default_factory=dict)
    failures: list[TaskEvent] = field(default_factory=list)
    changed_tasks: list[TaskEvent] = field(default_factory=list)
    diffs: dict[str, list[Any]] = field(default_factory=dict)
    containers: dict[str, list[str]] = field(default_factory=dict)  # host -> what its tasks' results name
    interrupted_by: int | None = None  # signal number when Ctrl-C / SIGTERM canceled the run
    error: str = ""  # ansible-playbook's last words when it stopped before running anything
    log: str = ""  # the run's full Ansible output (redacted, 0600): `safeapply show RUN --log`

    @property
    def failed_hosts(self) -> list[str]:
        return sorted(h for h, s in self.hosts.items() if s.failed)

    @property
    def unreachable_hosts(self) -> list[str]:
        return sorted(h for h, s in self.hosts.items() if s.unreachable)

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.hosts.values())

    @property
    def ok(self) -> bool:
        return self.status == "successful" and not self.failed_hosts and not self.unreachable_hosts

    def host_ok(self, host: str) -> bool:
        s = self.hosts.get(host)
        return s is not None and not s.failed and not s.unreachable and self.interrupted_by is None

    def raise_if_interrupted(self) -> None:
        if self.interrupted_by == signal.SIGINT:
            raise KeyboardInterrupt
        if self.interrupted_by is not None:
            raise Terminated(self.interrupted_by)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["failed_hosts"] = self.failed_hosts
        d["unreachable_hosts"] = self.unreachable_hosts
        return d


EventSink = Callable[[TaskEvent], None]


@dataclass(frozen=True)
class ApplyRequest:
    playbook: Path
    inventory: Sequence[str]
    limit: str | None = None
    extra_vars: Sequence[str] = ()  # as for ansible-playbook -e: k=v, JSON, or @file
    check: bool = False
    envvars: dict[str, str] = field(default_factory=dict)
    tags: Sequence[str] = ()
    skip_tags: Sequence[str] = ()
    start_at_task: str | None = None
    diff: bool = False
    verbosity: int = 0  # -v ... -vvvv: Ansible's own output streams (event `output`)
    ansible_args: Sequence[str] = ()  # handed to ansible-playbook verbatim (after `--` on the command line)
    log: Path | None = None  # where the full Ansible output is written (redacted, 0600)
    mark: str = ""  # SAFEAPPLY_RUN=<mark> on every module process on the hosts: rollback stops what is left running
    speedups: bool = True  # SSH pipelining and the run's own ControlPersist connections (ansible_callbacks/)


def run_playbook(req: ApplyRequest, on_event: EventSink | None = None) -> ApplyResult:
    """Run the playbook (check+diff mode when `req.check`) and return what happened, per host."""
    with prestart(req, on_event) as pending:
        return pending.go()


@contextmanager
def prestart(req: ApplyRequest, on_event: EventSink | None = None) -> Iterator[PendingPlaybook]:
    """Start ansible-playbook now, held before its first play (so before it touches any host) until `go()`.

    Its start-up (about a second of imports and parsing) then overlaps with whatever the caller does
    meanwhile. Leaving the block without `go()` stops it: no task has run.
    """
    playbook = req.playbook.resolve()
    if not playbook.is_file():
        raise UsageError(f"playbook {req.playbook} not found", "give the path of a playbook file")
    pending = PendingPlaybook(req, playbook, on_event)
    try:
        yield pending
    finally:
        pending.close()


class PendingPlaybook:
    """An ansible-runner job in its own thread, its ansible-playbook held at the gate (ansible_callbacks/)."""

    def __init__(self, req: ApplyRequest, playbook: Path, on_event: EventSink | None) -> None:
        self.req = req
        self.collector = _Collector(on_event, req.verbosity > 0, req.log)
        self.cancel = _CancelFlag()
        self.result: ApplyResult | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="safeapply-runner-")
        self._gate = Path(self._tmp.name) / "gate"
        self._control = Path(self._tmp.name) / "cp"  # the run's SSH control sockets (with speedups)
        ctx = ansible_context.get(req.inventory or None, req.extra_vars)
        envvars = {"ANSIBLE_NOCOLOR": "1", "PATH": _path_with_ansible(), "SAFEAPPLY_APPLY_GATE": str(self._gate),
                   "ANSIBLE_CALLBACK_PLUGINS": _callback_plugins(), **_host_key_checking(), **ctx.child_env(),
                   **_run_env(req, self._control), **req.envvars}
        # ansible-playbook PLAYBOOK as started from here: this directory, this ansible.cfg (pinned), its default
        # inventory when there is no -i; the options of safeapply's command line; typed passwords in 0600 files
        # inside the private dir, which close() deletes (runner's artifacts go there too)
        self._thread, self._runner = ansible_runner.run_async(
            private_data_dir=self._tmp.name,
            project_dir=os.getcwd(),
            playbook=str(playbook),
            inventory=[_abs_source(s) for s in req.inventory] or None,
            limit=req.limit,
            cmdline=_cmdline(req, ctx.args.playbook_args() + ctx.secret_args(Path(self._tmp.name))),
            envvars=envvars,
            settings={"pexpect_timeout": 0.5, "suppress_ansible_output": True},
            quiet=True,
            suppress_env_files=True,
            event_handler=self.collector.handle,
            cancel_callback=self.cancel.is_set,
        )

    def go(self, env: dict[str, str] | None = None) -> ApplyResult:
        """Let the playbook run; wait for it. Ctrl-C/SIGTERM meanwhile cancel it (see `interrupted_by`).
        `env`: set in ansible-playbook's environment before its first play (`ANSIBLE_PIPELINING=False`, say)."""
        with signals.noted(self.cancel.note):
            self._open_gate("\n".join(["go", *(f"{k}={v}" for k, v in (env or {}).items())]))
            while self._thread.is_alive():
                self._thread.join(0.2)  # short joins: the signal handlers run in this (main) thread
                if self.cancel.signum and not self.cancel.workers_killed:
                    self.cancel.kill_workers()
        self.result = self._result()
        return self.result

    def close(self) -> None:
        if self.result is None:
            self._open_gate("stop")
            self.cancel.stopped = True
            self._thread.join()
        self.collector.close()
        close_control_masters(self._control)
        self._tmp.cleanup()

    def _open_gate(self, word: str) -> None:
        tmp = self._gate.with_suffix(".tmp")
        tmp.write_text(word)
        os.replace(tmp, self._gate)

    def _result(self) -> ApplyResult:
        runner, collector = self._runner, self.collector
        result = ApplyResult(status=str(runner.status), rc=int(runner.rc or 0), check=self.req.check)
        result.hosts = _host_stats(runner.stats or collector.stats or {})
        if result.rc != 0 and not result.hosts:
            result.error = _output_tail(runner)  # it stopped before any host ran: a syntax error, say
        result.failures = collector.failures
        result.changed_tasks = collector.changed
        result.diffs = collector.diffs
        result.containers = collector.containers
        result.interrupted_by = self.cancel.signum
        result.log = str(self.req.log or "")
        self.collector.close()
        for host in collector.seen_hosts - result.hosts.keys():
            result.hosts[host] = HostStats()  # a host that never reached the stats event
        return result


def _callback_plugins() -> str:
    """Our gate first, then whatever the user configured (runner appends its own directory)."""
    ours = str(Path(__file__).parent / "ansible_callbacks")
    return os.pathsep.join(filter(None, (ours, os.environ.get("ANSIBLE_CALLBACK_PLUGINS"))))


def _run_env(req: ApplyRequest, control: Path) -> dict[str, str]:
    """What the safeapply_run callback reads in ansible-playbook: the run's mark; the speedups, or none."""
    env = {"SAFEAPPLY_RUN_MARK": req.mark, "SAFEAPPLY_ANSIBLE_SPEEDUPS": "1" if req.speedups else "0"}
    if req.speedups and len(str(control)) <= 60:  # ssh's socket path (dir/hash.random) must fit 108 bytes
        control.mkdir(mode=0o700)
        env["SAFEAPPLY_SSH_CONTROL_DIR"] = str(control)
    return env


def close_control_masters(control: Path) -> None:
    """The run's SSH control connections end with it: not left for ControlPersist's 60 s (and for another run)."""
    ssh = shutil.which("ssh")
    if ssh is None or not control.is_dir():
        return
    for sock in control.iterdir():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run([ssh, "-o", f"ControlPath={sock}", "-O", "exit", "safeapply"], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=10, check=False)


def _host_key_checking() -> dict[str, str]:
    """ansible-runner turns host key checking OFF unless told; keep Ansible's own default (on)."""
    return {"ANSIBLE_HOST_KEY_CHECKING": os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "True")}


def _path_with_ansible() -> str:
    """PATH with our venv's bin first: its ansible-playbook, even when the venv is not activated."""
    path = os.environ.get("PATH", os.defpath)
    beside = Path(sys.executable).parent
    if (beside / "ansible-playbook").exists():
        return f"{beside}{os.pathsep}{path}"
    if shutil.which("ansible-playbook", path=path) is None:
        raise ConfigError("ansible-playbook not found", "install ansible-core next to safeapply")
    return path


def _output_tail(runner: Any, lines: int = 6) -> str:
    """For the human reading the error only; results never come from this text."""
    try:
        text = runner.stdout.read()
    except Exception:  # runner raises its own exception type when there is no output at all
        return ""
    kept = [ln.rstrip() for ln in redact_text(str(text)).splitlines() if ln.strip()]
    return clean_terminal("\n".join(kept[-lines:]))


def _abs_source(source: str) -> str:
    p = Path(source)
    return str(p.resolve()) if p.exists() else source  # a host list "a,b," stays as it is


def _cmdline(req: ApplyRequest, ansible: Sequence[str] = ()) -> str:
    args: list[str] = list(ansible)
    for ev in req.extra_vars:
        args += ["-e", ev]
    if req.check:
        args += ["--check", "--diff"]
    elif req.diff:
        args += ["--diff"]
    args += [a for t in req.tags for a in ("--tags", t)] + [a for t in req.skip_tags for a in ("--skip-tags", t)]
    args += ["--start-at-task", req.start_at_task] if req.start_at_task is not None else []
    args += [f"-{'v' * min(req.verbosity, 6)}"] if req.verbosity else []
    return shlex.join([*args, *req.ansible_args])


def _host_stats(stats: dict[str, dict[str, int]]) -> dict[str, HostStats]:
    keys = {"ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable",
            "skipped": "skipped", "rescued": "rescued", "ignored": "ignored"}
    hosts: dict[str, HostStats] = {}
    for runner_key, attr in keys.items():
        for host, n in (stats.get(runner_key) or {}).items():
            setattr(hosts.setdefault(host, HostStats()), attr, int(n))
    for host in stats.get("processed") or {}:
        hosts.setdefault(host, HostStats())
    return hosts


class _Collector:
    """Receives runner events (in runner's thread), forwards task results and keeps what we report."""

    def __init__(self, sink: EventSink | None, stream: bool = False, log: Path | None = None) -> None:
        self.sink, self.stream = sink, stream
        self.log = _open_private(log) if log is not None else None
        self.failures: list[TaskEvent] = []
        self.changed: list[TaskEvent] = []
        self.diffs: dict[str, list[Any]] = {}
        self.containers: dict[str, list[str]] = {}  # host -> containers its task results name: the run's
        self.stats: dict[str, dict[str, int]] | None = None
        self.seen_hosts: set[str] = set()

    def handle(self, event: dict[str, Any]) -> bool:
        name = event.get("event", "")
        data = event.get("event_data") or {}
        text = str(event.get("stdout") or "")
        if text:
            self._output(clean_terminal(redact_text(text)))
        if name == "playbook_on_stats":
            self.stats = {k: data.get(k) or {} for k in
                          ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored", "processed")}
        elif name == "runner_on_start":
            self._emit(_task_event(data, "started"))
        elif name in _TASK_EVENTS:
            self._task_result(name, data)
        return True  # keep the event on disk: runner.stats reads it back

    def _task_result(self, name: str, data: dict[str, Any]) -> None:
        res = data.get("res") or {}
        status = _TASK_EVENTS[name]
        if status == "ok" and res.get("changed"):
            status = "changed"
        if status == "failed" and data.get("ignore_errors"):
            status = "ignored"
        ev = _task_event(data, status, _message(res) if status in ("failed", "unreachable") else "")
        if status in ("failed", "unreachable", "ignored"):
            ev = replace(ev, detail=failure_detail(res))
        if name.startswith("runner_item_"):
            ev = replace(ev, item=_item_label(res))
        if status != "skipped" and (named := containers_named(ev.action, res)):
            ev = replace(ev, containers=named)
            have = self.containers.setdefault(ev.host, [])
            have += [n for n in named if n not in have]
        self.seen_hosts.add(ev.host)
        if status in ("failed", "unreachable"):
            self.failures.append(ev)
        if status == "changed":
            self.changed.append(ev)
            if res.get("diff"):
                diff = res["diff"]
                diffs = diff if isinstance(diff, list) else [diff]
                kept = [_redacted(d) for d in diffs]
                self.diffs.setdefault(ev.host, []).extend(kept)
                ev = replace(ev, diff=unified(kept))
        self._emit(ev)

    def _output(self, text: str) -> None:
        """Ansible's own text for one event: always to the run's log, to the terminal with -v."""
        if self.log is not None:
            self.log.write(text.rstrip("\n") + "\n")
            self.log.flush()
        if self.stream:
            self._emit(TaskEvent(host="", task="", action="", status="output", message=text))

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    def _emit(self, ev: TaskEvent) -> None:
        if self.sink is not None:
            self.sink(ev)


def _redacted(diff: Any) -> Any:
    """A task's diff as kept in the run record and shown: secret files masked, secret-named values masked."""
    if not isinstance(diff, dict):
        return diff
    out = dict(diff)
    paths = [str(out.get(k) or "") for k in ("before_header", "after_header")]
    texts = [k for k in ("before", "after", "prepared") if isinstance(out.get(k), str)]
    secret = any(p and is_secret(p, None, patterns()) for p in paths) or any(
        is_secret("", out[k].encode(errors="replace"), ()) for k in texts)
    for k in texts:
        out[k] = MASK if secret else redact_text(out[k])
    return out


def _task_event(data: dict[str, Any], status: str, message: str = "") -> TaskEvent:
    return TaskEvent(
        host=str(data.get("host", "")), task=str(data.get("task", "")),
        action=str(data.get("task_action", "")), status=status, message=message,
    )


def _message(res: dict[str, Any]) -> str:
    """The first line of what the host said, redacted before it is cut (a cut secret no longer looks like one)
    and made safe to print: it goes to the terminal, the run record and `show`."""
    for key in ("msg", "stderr", "reason"):
        text = str(res.get(key) or "").strip()
        if text:
            return clean_terminal(redact_text(text).splitlines()[0][:300])
    return ""


SCREENFUL = 40  # lines of a failure's detail shown; the whole output is in the run's log


def failure_detail(res: dict[str, Any], limit: int = SCREENFUL) -> str:
    """What a failed task (or one failed loop item) said: its msg, stderr and the tail of its stdout —
    redacted before it is cut, made safe for a terminal, at most `limit` lines."""
    lines: list[str] = []
    for key, label in (("msg", "msg"), ("stderr", "stderr"), ("module_stderr", "stderr")):
        text = str(res.get(key) or "").strip()
        if text:
            body = redact_text(text).splitlines()
            lines += [f"{label}: {body[0]}", *(f"  {ln}" for ln in body[1:])]
    out = redact_text(str(res.get("stdout") or res.get("module_stdout") or "").strip()).splitlines()
    if out:
        tail = out[-10:]
        lines += [f"stdout{' (last 10 lines)' if len(out) > 10 else ''}:", *(f"  {ln}" for ln in tail)]
    # a loop's items: each failed item is its own event (runner_item_on_failed), with its own detail
    if len(lines) > limit:
        lines = [*lines[:limit - 1], f"... {len(lines) - limit + 1} more lines in `safeapply show RUN --log`"]
    return clean_terminal("\n".join(lines))


def _item_label(res: dict[str, Any]) -> str:
    label = res.get("_ansible_item_label", res.get("item", ""))
    return clean_terminal(redact_text(str(label)))[:200]


def unified(diffs: list[Any]) -> str:
    """Ansible's diff records (already redacted) as unified diff text, the way its callback prints them."""
    import difflib

    parts: list[str] = []
    for d in diffs:
        if not isinstance(d, dict):
            continue
        if isinstance(d.get("prepared"), str):
            parts.append(d["prepared"].rstrip("\n"))
        if "before" in d or "after" in d:
            before, after = _yaml(d.get("before")), _yaml(d.get("after"))
            parts += [ln.rstrip("\n") for ln in difflib.unified_diff(
                before.splitlines(keepends=True), after.splitlines(keepends=True),
                fromfile=str(d.get("before_header") or "before"), tofile=str(d.get("after_header") or "after"))]
    return clean_terminal("\n".join(p for p in parts if p))


def _yaml(value: Any) -> str:
    """A structured side of a diff (a service's state, a file's attributes): one `key: value` line each."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "".join(f"{k}: {redact_text(str(v))}\n" for k, v in sorted(value.items()))
    return redact_text(str(value)) + "\n"


def run_log(run_id: str) -> Path:
    """Where a run's full Ansible output is kept: beside the run history, `<state>/logs/runs/<id>.log`."""
    from safeapply.config import log_dir

    return log_dir() / "runs" / f"{run_id}.log"


def _open_private(path: Path) -> Any:
    """The run's log, created 0600 in a 0700 directory (it may quote configuration the play wrote)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8", errors="replace")


class _CancelFlag:
    def __init__(self) -> None:
        self.signum: int | None = None
        self.stopped = False  # the caller gave up before `go()`
        self.workers_killed = False

    def kill_workers(self) -> None:
        """runner stops ansible-playbook only; its workers and their commands would live on, orphaned.
        Each worker leads a session of its own (ansible calls setsid), which its commands inherit. So:
        stop ansible-playbook (no new worker can appear; runner's cancel still ends it: SIGHUP, then SIGCONT)
        and kill every process in its workers' sessions."""
        self.workers_killed = True
        for main in _playbook_children():
            with contextlib.suppress(psutil.Error, OSError):
                main.suspend()
                sessions = {os.getsid(p.pid) for p in main.children(recursive=True)} - {
                    os.getsid(0), os.getsid(main.pid)}
                _kill_sessions(sessions)


    def note(self, signum: int) -> None:
        self.signum = self.signum or signum

    def is_set(self) -> bool:
        return self.signum is not None or self.stopped


def _playbook_children() -> list[psutil.Process]:
    """Our ansible-playbook children (never our SSH ProxyCommands)."""
    out = []
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if any("ansible-playbook" in part for part in child.cmdline()):
                out.append(child)
    return out


def _kill_sessions(sessions: set[int], passes: int = 20) -> None:
    """Kill every process in these sessions, again until a pass finds none: a worker killed in one pass may have
    forked its task's command a moment before (the command then lives on in the same session)."""
    for _ in range(passes):
        found = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if os.getsid(proc.pid) in sessions:
                    proc.kill()
                    found.append(proc)
        if not found:
            return
        psutil.wait_procs(found, timeout=0.5)
