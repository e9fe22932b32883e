"""`safeapply run`: the pipeline — the one place that knows the stage order and decides how a run ends.

    start ansible-lint and ansible-playbook (held at its gate)  ->  the hosts the plays' `hosts:` name
    -> (lint -> resolve the playbook) | (connect -> lock -> scan | (snapshot -> switch armed)), overlapped
    -> plan
    -> [check: apply --check, stop]
    -> the apply window: apply -> verify -> switches confirmed -> failed hosts rolled back
    -> record, metrics, notify

Before the apply window every error keeps its own code (10-19: nothing changed; switches armed by then are
released). Inside it, any exception rolls back every host not yet verified and the run ends 20/21
(`outcome.decide`); Ctrl-C and SIGTERM roll back first, then end the run 130/143. Only this module writes
the run record; the dead-man's switch (`safeapply.deadman`) is called at its steps and returns values.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from safeapply import deadman, parallel, run_config, signals
from safeapply import run_stages as stages
from safeapply.apply import ApplyRequest, ApplyResult, PendingPlaybook, TaskEvent, prestart, run_log
from safeapply.deadman.keepalive import Keepalive
from safeapply.errors import ExitCode, SafeapplyError, Terminated, UsageError, signal_exit_code, status_of
from safeapply.inventory import Host
from safeapply.lock import host_lock
from safeapply.outcome import HostEnd, HostOutcome, RunOutcome, decide
from safeapply.records import RunRecord, RunStore, new_record, provenance
from safeapply.rollback import RollbackReport, apt_log_offset, files_restored, rollback_host
from safeapply.run_options import RunOptions
from safeapply.scan import HostState, scan_host
from safeapply.transport.base import Transport
from safeapply.verify import Expectation, VerifyReport, checks_file_for, load_checks, verify_host

if TYPE_CHECKING:
    from safeapply.intent import Intent

__all__ = ["HostRun", "Outcome", "Pipeline", "Reporter", "RunOptions"]

T = TypeVar("T")


class Reporter(Protocol):
    def stage(self, name: str, detail: str = "") -> None: ...
    def task(self, event: TaskEvent) -> None: ...


@dataclass
class Switch:
    """A host's dead-man's switch as the run knows it (kept in the record under `snapshots.<host>.deadman`)."""

    armed: deadman.Armed
    keepalive: Keepalive | None = None
    outcome: str = "armed"  # armed | released | release-failed | disarmed | restored | rollback-failed
    detail: dict[str, Any] = field(default_factory=dict)

    def current(self) -> deadman.Armed:
        """The armed state, with the keepalive stopped (nothing pushes the deadline any more)."""
        if self.keepalive is not None:
            self.armed, failures = self.keepalive.stop(), self.keepalive.failures
            self.keepalive = None
            if failures:  # each was retried until the host's deadline; the record says why pushes failed
                self.detail["keepalive_failures"] = failures[-5:]
        return self.armed

    @property
    def fired(self) -> bool:
        return self.outcome in ("restored", "rollback-failed")

    def to_dict(self) -> dict[str, Any]:
        return {"armed": self.armed.to_dict(), "outcome": self.outcome, **self.detail}


@dataclass
class HostRun:
    """One host's state through the run: filled in stage by stage, read by the record and `outcome.decide`."""

    host: Host
    connect: Callable[[], Transport]
    expect: Expectation = field(default_factory=Expectation)
    transport: Transport | None = None  # opened before apply, kept open to its end
    before: HostState | None = None
    snapshot: str | None = None
    apt_offset: int | None = None
    machine_id: str = ""  # /etc/machine-id: `safeapply rollback RUN` refuses another machine under the same name
    needs_tty: bool = False  # sudo there wants a terminal (requiretty): the run goes without SSH pipelining
    switch: Switch | None = None
    verify: VerifyReport | None = None
    rollback: RollbackReport | None = None
    verified: Transport | None = None  # verify's connection, opened after apply and proven to work
    settled: bool = False  # verified and its switch confirmed: nothing after this rolls it back

    @property
    def name(self) -> str:
        return self.host.name

    def fresh(self) -> Transport:
        """A connection opened after apply: verify's, handed over once (the caller closes it), else a new one."""
        t, self.verified = self.verified, None
        return t if t is not None else self.connect()

    def end(self) -> HostEnd:
        if self.switch is not None and self.switch.fired:
            return HostEnd.SELF_RESTORED if self.switch.outcome == "restored" else HostEnd.NOT_RESTORED
        if self.rollback is not None:
            return HostEnd.ROLLED_BACK if self.rollback.restored else HostEnd.NOT_RESTORED
        return HostEnd.APPLIED if self.settled else HostEnd.NOT_RESTORED

    def snapshot_note(self) -> dict[str, Any]:
        note: dict[str, Any] = {"id": self.snapshot, "apt_offset": self.apt_offset, "machine_id": self.machine_id}
        if self.switch is not None:
            note["deadman"] = self.switch.to_dict()
        return note

    def close(self) -> None:
        if self.switch is not None:
            self.switch.current()
        for t in (self.transport, self.verified):
            if t is not None:
                t.close()


@dataclass
class Outcome:
    record: RunRecord
    exit_code: int
    message: str
    recorded: bool = True  # False: bad input found before any host; not a run, not in history


class Pipeline:
    def __init__(self, opts: RunOptions, reporter: Reporter, confirm: Callable[[list[str]], bool],
                 store: RunStore | None = None, progress: Callable[[str], None] | None = None) -> None:
        self.opts, self.ui, self.confirm = opts, reporter, confirm
        self.say = progress or (lambda _m: None)
        self.store = store or RunStore()
        self.rec = new_record(opts.playbook, limit=opts.limit, check=opts.check)
        self.hosts: list[HostRun] = []
        self.timings: dict[str, float] = {}
        self.notes: dict[str, str] = {}
        self.lint: stages.LintOutcome | None = None
        self.plan: stages.PlanOutcome | None = None
        self.apply: ApplyResult | None = None
        self.applied_from: float | None = None  # time.time() when apply began
        self._resolved: Future[dict[str, Intent]] = Future()  # lint, then the playbook's resolution
        self._expected: dict[str, Expectation] = {}  # each host's, set with the resolution (before it completes)
        self._record_lock = threading.Lock()
        self._record = True  # False: bad input caught before any host, which is not recorded as a run
        self.where = run_config.recorded()  # the directory and ansible.cfg `rollback RUN` reads again

    # ---- driver ----------------------------------------------------------------------------------------
    def run(self) -> Outcome:
        started = time.monotonic()
        try:
            out = self._run()
        except SafeapplyError as e:  # before the apply window: the error's own code, nothing changed
            out = RunOutcome(int(e.exit_code), str(e))
            if not self.hosts and e.exit_code in (ExitCode.USAGE, ExitCode.CONFIG, ExitCode.VAULT):
                self._record = False  # bad input found before any host: not a run, never in history
        except BaseException as e:  # Ctrl-C / SIGTERM / a bug: record what the funnel will answer, re-raise
            self._finish(_aborted(e), started)
            raise
        self._finish(out, started)
        self._after(out, time.monotonic() - started)
        return Outcome(self.rec, out.code, out.message, self._record)

    def _run(self) -> RunOutcome:
        checks = load_checks(checks_file_for(self.opts.playbook))
        with ExitStack() as stack:
            # the two slow subprocesses first, so that they overlap with everything up to apply:
            # ansible-lint (unless cached), and ansible-playbook held at its gate before the first play
            early_lint = stages.start_lint(self.opts)
            stack.callback(early_lint.close)
            pending = stack.enter_context(prestart(self._request(), self.ui.task))
            with self._stage("resolve"):
                inventory = stages.resolve(self.opts)
                names = stages.target_hosts(self.opts)
            locks = stack.enter_context(ExitStack())  # released before the playbook is stopped
            armed = stack.enter_context(ExitStack())  # switches armed before apply: released if it never starts
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))
            stack.callback(early_lint.stop)  # on an error before lint ends: do not wait for ansible-lint
            self._resolved = pool.submit(self._lint_then_resolve, inventory, early_lint, names)
            if names is None:  # a templated `hosts:`: the hosts are known once the playbook is resolved
                names = list(self._resolved.result())
            self.hosts = [HostRun(inventory[n], stages.connector(inventory[n], self.opts)) for n in names]
            self._save()  # from here on the record says how far the run got, also if the controller is killed
            armed.callback(self._release)
            self._prepare_hosts(locks)
            intents = self._resolved.result()
            for h in self.hosts:
                self._expect(h)  # the hosts that armed no switch
            with self._stage("plan"):
                self.plan = stages.plan(intents, {h.name: h.before for h in self.hosts if h.before},
                                        {h.name: h.expect for h in self.hosts})
            if self.opts.plan_check:
                self._plan_check()
            self._save()
            self.plan.raise_if_blocking()
            if self.plan.warnings and not self.confirm(self.plan.warnings):
                raise UsageError("the plan has warnings and the run was not confirmed",
                                 "review them, then re-run with --yes")
            if self.opts.check:
                return self._check_mode(pending)
            armed.pop_all()  # apply starts: from here on switches are confirmed or kept, never just released
            return self._apply_window(pending, checks)
        raise AssertionError("unreachable")  # mypy: ExitStack may swallow exceptions

    def _lint_then_resolve(self, inventory: dict[str, Host], early: Any, names: list[str] | None
                           ) -> dict[str, Intent]:
        """Lint; once it passed, the playbook's full resolution (templates rendered, lookups off: see
        `safeapply.intent`) — beside connect, scan and snapshot. Nothing of the playbook's, not even a
        project's own filter plugin, is evaluated on the controller before lint has answered."""
        self.lint = self._timed("lint", stages.lint, self.opts, inventory, early)
        self._save()
        self.lint.raise_if_blocking()
        with self._stage("intents"):
            intents = stages.intents(self.opts)
        if names is not None and set(names) != set(intents):  # `hosts:` as written and as resolved agree
            raise UsageError(f"the playbook's hosts resolved to {', '.join(sorted(intents)) or 'none'}, not "
                             f"{', '.join(sorted(names))} as its plays' `hosts:` read",
                             "report this with the playbook's plays (`hosts:` and `import_playbook:` lines)")
        self._expected = {n: stages.expectation(i, stages.login_user(inventory[n])) for n, i in intents.items()}
        return intents

    def _expect(self, h: HostRun) -> Expectation:
        """The host's expectation (what should run after the playbook): waits for lint and resolution."""
        self._resolved.result()
        h.expect = self._expected[h.name]
        return h.expect

    def _plan_check(self) -> None:
        """--plan-check: Ansible's own check mode (a second ansible-playbook, beside the one held at its gate)."""
        assert self.plan is not None
        req = self._request()
        req = replace(req, envvars={**req.envvars, **self._apply_env()})  # the apply's own pipelining fallback
        with self._stage("plan-check", "ansible-playbook --check --diff"):
            self.plan = stages.plan_check(self.opts, self.plan, {h.name: h.before for h in self.hosts if h.before},
                                          req)
        self.say(str(self.plan.check.get("cost", "")))

    # ---- before apply ----------------------------------------------------------------------------------
    def _prepare_hosts(self, locks: ExitStack) -> None:
        """Connect, lock, scan, snapshot and arm every host in parallel; the first error stops the run."""
        with self._stage("connect+lock"):
            for h, t in zip(self.hosts, parallel.each(self.hosts, lambda h: h.connect()), strict=True):
                h.transport = t
                locks.enter_context(host_lock(t, self.rec.id))
        with self._stage("scan+snapshot"):
            parallel.each(self.hosts, self._scan_and_snapshot)
        self._save()

    def _scan_and_snapshot(self, h: HostRun) -> None:
        """Both read-only, so at once over two channels of the host's one connection."""
        t = h.transport
        assert t is not None
        if self.opts.check:
            h.before, h.needs_tty = scan_host(t), stages.needs_tty(t, self.opts)
            return
        with ThreadPoolExecutor(max_workers=1) as side:
            scanned = side.submit(lambda: (scan_host(t), apt_log_offset(t), stages.machine_id(t),
                                           stages.needs_tty(t, self.opts)))
            try:
                h.snapshot = stages.snapshot(t, self.opts.roots)
                if self.opts.switch_on:  # beside the scan, once lint passed: the plan may still stop the run
                    self._arm(h, t)
            finally:  # the scan is recorded also when lint stopped the run meanwhile
                if scanned.exception() is None:
                    h.before, h.apt_offset, h.machine_id, h.needs_tty = scanned.result()
            scanned.result()  # the scan's own error

    def _arm(self, h: HostRun, t: Transport) -> None:
        units = sorted(self._expect(h).units)  # the units it watches: known once lint passed and resolve ended
        armed = deadman.arm(t, self.rec.id, h.snapshot, self.opts.deadman_deadline, units)
        self.say(f"{h.name}: dead-man's switch armed; restores itself at {armed.deadline} by its own clock "
                 f"(in {armed.deadline_s:g} s) unless confirmed")
        h.switch = Switch(armed, Keepalive(t, armed) if self.opts.deadman_keepalive else None)
        if armed.skew_warning():  # in the run output and, with the armed state, in the record
            self.say(armed.skew_warning())
            h.switch.detail["warning"] = armed.skew_warning()
        self._save()  # a killed controller leaves the record saying what is armed where

    def _release(self) -> None:
        """The run stopped before apply (lint, plan, an error, Ctrl-C): disarm; nothing was changed."""
        parallel.per_host([h for h in self.hosts if h.switch and h.switch.outcome == "armed"], self._release_one)
        self._save()

    def _release_one(self, h: HostRun) -> None:
        assert h.switch is not None
        sw, armed = h.switch, h.switch.current()
        try:
            if h.transport is not None:
                deadman.disarm(h.transport, armed)
            else:
                with h.connect() as t:
                    deadman.disarm(t, armed)
            sw.outcome = "released"
        except SafeapplyError as e:  # at its deadline it restores a host nothing was applied to
            sw.outcome, sw.detail["error"] = "release-failed", str(e)

    def _request(self) -> ApplyRequest:
        o = self.opts
        return ApplyRequest(o.playbook, list(o.inventory), o.limit, list(o.extra_vars), check=o.check, tags=o.tags,
                            skip_tags=o.skip_tags, start_at_task=o.start_at_task, diff=o.diff,
                            verbosity=o.verbosity, ansible_args=o.ansible_args, log=run_log(self.rec.id),
                            mark=self.rec.id, speedups=o.speedups)

    def _apply_env(self) -> dict[str, str]:
        """Set in ansible-playbook as it starts its first play: pipelining off when a host needs a tty for sudo."""
        env, why = stages.apply_env(self.opts, [h.name for h in self.hosts if h.needs_tty])
        if why:
            self.notes["speedups"] = why
            self.say(why)
        return env

    def _check_mode(self, pending: PendingPlaybook) -> RunOutcome:
        with self._stage("check"):
            self.apply = pending.go(self._apply_env())
        self._save()
        if not self.apply.ok:
            return RunOutcome(ExitCode.ERROR, _apply_failure(self.apply))
        if not self.apply.changed:
            return RunOutcome(ExitCode.NOTHING_TO_CHANGE, "check mode: nothing would change")
        return RunOutcome(ExitCode.OK, "check mode: changes shown, nothing applied")

    # ---- the apply window --------------------------------------------------------------------------------
    def _apply_window(self, pending: PendingPlaybook, checks: list[dict[str, Any]]) -> RunOutcome:
        """From the start of apply to the end of verification. Whatever goes wrong in here, every host not yet
        verified is rolled back: an error ends the run 20/21, Ctrl-C/SIGTERM are re-raised after it."""
        try:
            with self._stage("apply"):
                self.applied_from = time.time()
                self.apply = pending.go(self._apply_env())
            self._save()
            self.apply.raise_if_interrupted()
            return self._verify_and_settle(self.apply, checks)
        except (KeyboardInterrupt, Terminated):
            self.ui.stage("interrupted", "rolling back every host before exiting")
            self._rollback(self._unsettled())
            raise
        except Exception as e:
            why = f"after apply: {e}" if isinstance(e, SafeapplyError) else \
                f"internal error after apply: {type(e).__name__}: {e}"
            self.ui.stage("error", f"{why}; rolling back every host not verified")
            self._rollback(self._unsettled())
            return self._decide(why)

    def _unsettled(self) -> list[HostRun]:
        return [h for h in self.hosts if not h.settled and not (h.switch and h.switch.fired)]

    def _verify_and_settle(self, result: ApplyResult, checks: list[dict[str, Any]]) -> RunOutcome:
        good = [h for h in self.hosts if result.host_ok(h.name)]
        applied = time.monotonic()
        way_in = {h.name: _way_in_changed(h, result) for h in good}
        why = next((r for rs in way_in.values() for r in rs), "")
        wait = f"SSH checked {self.opts.settle:g}s after apply ({why})" if why and self.opts.settle else ""
        with self._stage("verify", wait):
            parallel.each(good, lambda h: self._verify(h, checks, applied, way_in[h.name], result))
        self._save()
        failing = {h.name for h in self._unsettled() if not result.host_ok(h.name) or (h.verify and not h.verify.ok)}
        self._confirm_switches(keep=failing)  # a host about to be rolled back keeps its switch armed through it
        failed = [h for h in self._unsettled() if h.name in failing]
        for h in self._unsettled():
            h.settled = h not in failed
        why = _apply_failure(result) if not result.ok else _verify_failure(failed)
        self._rollback(failed)
        return self._decide(why)

    def _verify(self, h: HostRun, checks: list[dict[str, Any]], applied: float, way_in: list[str],
                result: ApplyResult) -> None:
        """Verification as large as the change: a host the play changed nothing on gets the proof of reach and
        one scan; one where a task that touches the way in (sshd, firewall, network, async) changed may shut us
        out a moment after the play ended, so its proof of reach (and the switch's confirmation) waits --settle."""
        assert h.before is not None
        not_before = applied + self.opts.settle if way_in else None
        stats = result.hosts.get(h.name)
        h.verify = verify_host(h.connect, h.before, h.expect, checks, self.opts.settle, current=h.transport,
                               not_before=not_before, handover=lambda t: setattr(h, "verified", t),
                               changed=stats is None or stats.changed > 0)
        h.verify.way_in = way_in if self.opts.settle else []

    def _confirm_switches(self, keep: set[str]) -> None:
        """Disarm each switch over a connection opened after apply (those of the hosts in `keep`, about to be
        rolled back, stay armed: disarmed once their rollback is verified); a host that shut us out restores
        itself, and the restore is waited for and verified."""
        hosts = [h for h in self.hosts if h.switch and h.switch.outcome == "armed"]
        if not hosts:
            return
        with self._stage("confirm"):
            parallel.each(hosts, lambda h: self._confirm_one(h, h.name in keep))
        self._save()

    def _confirm_one(self, h: HostRun, keep: bool) -> None:
        assert h.switch is not None
        sw = h.switch
        listing, roots = stages.pre_run_listing(h.snapshot)  # a self-restore is compared with both
        out = deadman.confirm_or_wait(_Fresh(h), sw.current(), margin_s=self.opts.deadman_margin,
                                      before_scan=h.before, before_listing=listing, roots=roots or ("/etc",),
                                      progress=self.say, keep_armed=keep)
        sw.outcome = out.status
        if out.armed is not None:
            sw.armed = out.armed
        sw.detail.update({k: v for k, v in out.to_dict().items() if k not in ("host", "status")})

    def _rollback(self, hosts: list[HostRun]) -> None:
        """Roll the hosts back; a Ctrl-C/SIGTERM meanwhile is held until every host is done, then delivered."""
        hosts = [h for h in hosts if h.rollback is None]
        if not hosts:
            return
        with self._stage("rollback"), signals.deferred():
            parallel.each(hosts, self._rollback_one)
            self._save()

    def _rollback_one(self, h: HostRun) -> None:
        if h.snapshot is None or h.before is None:
            return
        try:
            t, mine = self._rollback_connection(h)
        except SafeapplyError as e:
            h.rollback = RollbackReport(h.name, h.snapshot, errors=[f"connect: {e}"])
            return
        sw = h.switch if h.switch is not None and h.switch.outcome == "armed" else None
        keepalive = Keepalive(t, sw.current()) if sw is not None and self.opts.deadman_keepalive else None
        try:  # the switch stays armed (kept alive) through the rollback: if it cuts SSH, the host finishes it
            h.rollback = rollback_host(t, h.snapshot, h.before, stages.snapshot_ops(), apt_offset=h.apt_offset,
                                       rollback_packages=self.opts.rollback_packages, tasks_since=self.applied_from,
                                       ours=h.expect.units, containers=self._containers_of(h),
                                       tasks_mark=self.rec.id)
        finally:
            if sw is not None and keepalive is not None:
                sw.armed = keepalive.stop()
        try:
            if files_restored(h.rollback) and sw is not None:  # disarmed once the rollback's outcome is known
                self._disarm_after_rollback(sw, t)
        finally:
            if mine:
                t.close()

    def _containers_of(self, h: HostRun) -> frozenset[str]:
        """The containers this run may put back on the host: those its plan names and those its tasks' results
        named there (names, IDs)."""
        named = self.apply.containers.get(h.name, []) if self.apply is not None else []
        return h.expect.named_containers | frozenset(named)

    def _rollback_connection(self, h: HostRun) -> tuple[Transport, bool]:
        """The connection kept open since before apply when it still answers (a play that changed the host
        key or sshd's config leaves it working), else a new one. True: the caller closes it."""
        if h.transport is not None:
            try:
                if h.transport.run(["true"], timeout=15).ok:
                    return h.transport, False
            except SafeapplyError:
                pass
        return h.connect(), True

    def _disarm_after_rollback(self, sw: Switch, t: Transport) -> None:
        try:
            fired = deadman.disarm(t, sw.current())
            sw.outcome = "disarmed" if fired is None else "restored"
            sw.detail["message"] = "disarmed after the controller's rollback"
        except SafeapplyError as e:  # it stays armed: at its deadline it restores the same snapshot again
            sw.detail["error"] = f"disarm after rollback: {e}"

    def _decide(self, why: str) -> RunOutcome:
        switched = [h.name for h in self.hosts if h.switch is not None and h.switch.fired]
        return decide([HostOutcome(h.name, h.end()) for h in self.hosts], changed=bool(self.apply and
                      self.apply.changed), why=why, switched=switched)

    # ---- the record, and after it ------------------------------------------------------------------------
    def _sections(self) -> dict[str, Any]:
        opts, hosts = self.opts, self.hosts
        s: dict[str, Any] = {"inventory": stages.inventory_sources(opts), "timings": self.timings,
                             "provenance": {**provenance(opts.prompt_file, opts.model, opts.note), **self.where}}
        scans = {h.name: h.before.to_dict() for h in hosts if h.before}
        if scans:
            s["scans"] = scans
            s["snapshots"] = {h.name: h.snapshot_note() for h in hosts}
        optional = {"lint": self.lint, "plan": self.plan, "apply": self.apply}
        s.update({k: v.to_dict() for k, v in optional.items() if v is not None})
        if any(h.verify for h in hosts):
            s["verify"] = {h.name: h.verify.to_dict() for h in hosts if h.verify}
        if any(h.rollback for h in hosts):
            s["rollback"] = {h.name: h.rollback.to_dict() for h in hosts if h.rollback}
        if self.notes:
            s["notes"] = dict(self.notes)
            s["hosts"] = [h.name for h in hosts]
        return s

    def _save(self) -> None:
        with self._record_lock:
            self.rec.sections = self._sections()
            if self._record:
                self.store.save(self.rec)

    def _finish(self, out: RunOutcome, started: float) -> None:
        self.timings["total"] = round(time.monotonic() - started, 3)
        self.rec.exit_code, self.rec.status = out.code, status_of(out.code)
        self.notes["message"] = out.message
        self.rec.finished = stages.now_iso()
        self._save()
        for h in self.hosts:
            h.close()

    def _after(self, out: RunOutcome, seconds: float) -> None:
        """The last stage: node_exporter metrics and the notification; neither changes the run's code."""
        if self.opts.metrics_dir is not None:
            error = stages.write_metrics(self.opts, self.rec, self.store, out.code, seconds)
            if error:
                self.notes["metrics"] = f"not written: {error}"
                self.say(f"warning: metrics not written to {self.opts.metrics_dir}: {error}")
        if self.opts.notify_url and out.code not in (ExitCode.OK, ExitCode.NOTHING_TO_CHANGE):
            self.notes["notify"] = stages.notify(self.opts, self.rec, out.message)
        self._save()

    # ---- helpers ---------------------------------------------------------------------------------------
    @contextmanager
    def _stage(self, name: str, detail: str = "") -> Iterator[None]:
        self.ui.stage(name, detail)
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0) + time.monotonic() - t0, 3)

    def _timed(self, name: str, fn: Callable[..., T], *args: Any) -> T:
        with self._stage(name):
            return fn(*args)


@dataclass
class _Fresh:
    """A host as the switch's confirmation connects to it: over the connection opened after apply."""

    run: HostRun

    @property
    def name(self) -> str:
        return self.run.name

    def connect(self, accept_new_host_keys: bool = False) -> Transport:
        return self.run.fresh()


def _apply_failure(result: ApplyResult) -> str:
    if result.interrupted_by:
        return "apply interrupted"
    parts = [f"{f.host}: {f.task}: {f.message}" for f in result.failures[:3]]
    last = result.error.splitlines()[-1] if result.error else f"ansible-playbook exited {result.rc}"
    return "apply failed: " + ("; ".join(parts) or last)


def _way_in_changed(h: HostRun, result: ApplyResult) -> list[str]:
    """The way-in reasons ("task: why") whose task changed on this host; a job left running (async, poll 0)
    always counts: it goes on after the play."""
    names = {ev.task for ev in result.changed_tasks if ev.host == h.name}
    return [r for r in h.expect.way_in if "(async, poll: 0)" in r or any(r.startswith(f"{n}: ") for n in names)]


def _verify_failure(hosts: list[HostRun]) -> str:
    msgs = [f"{f.host}: {f.message}" for h in hosts if h.verify for f in h.verify.findings]
    return "verification failed: " + "; ".join(msgs[:3])


def _aborted(e: BaseException) -> RunOutcome:
    """The exit code and message the CLI funnel gives for an exception that ends a run."""
    if isinstance(e, KeyboardInterrupt):
        return RunOutcome(ExitCode.INTERRUPTED, "interrupted (Ctrl-C)")
    if isinstance(e, Terminated):
        return RunOutcome(signal_exit_code(e.signum), str(e))
    return RunOutcome(ExitCode.INTERNAL, f"internal error: {type(e).__name__}: {e}")
