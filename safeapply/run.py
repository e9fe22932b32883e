"""`safeapply run`: the pipeline, and the one place that knows the stage order.

    start ansible-lint and ansible-playbook (held at its gate)  ->  resolve hosts
    -> lint | (connect -> lock -> scan | (snapshot -> guards.arm)), overlapped  ->  plan
    -> [check: apply --check, stop]  ->  apply (rollback on Ctrl-C/SIGTERM)  ->  verify  ->  guards.confirm
    -> rollback the failed hosts -> verify the rollback  ->  record, metrics, notify

Every gate before apply stops with its own exit code and nothing changed (guards armed by then are
released). A `Guard` (issue 7's target-side dead-man's switch) slots in with `arm` right after each host's
snapshot, `confirm` after verification and `release` when the run stops before apply.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from safeapply import run_stages as stages
from safeapply.apply import ApplyRequest, ApplyResult, PendingPlaybook, TaskEvent, prestart
from safeapply.errors import ExitCode, SafeapplyError, Terminated, UsageError
from safeapply.lock import host_lock
from safeapply.records import RunRecord, RunStore, new_record, provenance
from safeapply.rollback import RollbackReport, apt_log_offset, rollback_host
from safeapply.scan import HostState, scan_host
from safeapply.transport.base import Transport
from safeapply.verify import DEFAULT_SETTLE, Expectation, VerifyReport, checks_file_for, load_checks, verify_host


@dataclass(frozen=True)
class RunOptions:
    playbook: Path
    inventory: Sequence[str]
    limit: str | None = None
    extra_vars: Sequence[str] = ()
    check: bool = False
    yes: bool = False
    accept_new_host_keys: bool = False
    settle: float = DEFAULT_SETTLE
    rollback_packages: bool = False
    roots: Sequence[str] = ("/etc",)
    prompt_file: Path | None = None
    model: str | None = None
    note: str | None = None


class Reporter(Protocol):
    def stage(self, name: str, detail: str = "") -> None: ...
    def task(self, event: TaskEvent) -> None: ...


class Guard(Protocol):
    """A safety net around apply on each host (issue 7): armed right after the host's snapshot, confirmed
    after verify, released (a run that never reached apply) otherwise."""

    def arm(self, hosts: list[HostRun]) -> None: ...
    def confirm(self, hosts: list[HostRun]) -> None: ...
    def release(self, hosts: list[HostRun]) -> None: ...


@dataclass
class HostRun:
    name: str
    connect: Callable[[], Transport]
    transport: Transport | None = None
    before: HostState | None = None
    snapshot: str | None = None
    apt_offset: int | None = None
    expect: Expectation = field(default_factory=Expectation)
    verify: VerifyReport | None = None
    rollback: RollbackReport | None = None
    verified: Transport | None = None  # verify's connection, opened after apply and proven to work

    def fresh(self) -> Transport:
        """A connection opened after apply: verify's, handed over once (the caller closes it), else a new one."""
        t, self.verified = self.verified, None
        return t if t is not None else self.connect()

    def close(self) -> None:
        for t in (self.transport, self.verified):
            if t is not None:
                t.close()


@dataclass
class Outcome:
    record: RunRecord
    exit_code: int
    message: str


class Pipeline:
    def __init__(self, opts: RunOptions, reporter: Reporter, confirm: Callable[[list[str]], bool],
                 guards: Sequence[Guard] = (), store: RunStore | None = None) -> None:
        self.opts, self.ui, self.confirm, self.guards = opts, reporter, confirm, list(guards)
        self.store = store or RunStore()
        self.rec = new_record(opts.playbook, limit=opts.limit, check=opts.check)
        self.hosts: list[HostRun] = []
        self.timings: dict[str, float] = {}
        self.applied_from: float | None = None  # time.time() when apply began

    # ---- driver ----------------------------------------------------------------------------------------
    def run(self) -> Outcome:
        opts, rec = self.opts, self.rec
        rec.sections.update(inventory=list(opts.inventory), timings=self.timings,
                            provenance=provenance(opts.prompt_file, opts.model, opts.note))
        self.store.save(rec)
        started = time.monotonic()
        try:
            code, message = self._run()
        except SafeapplyError as e:
            code, message = int(e.exit_code), str(e)
        except BaseException as e:  # Ctrl-C / SIGTERM / a bug: record what the funnel will answer, re-raise
            self._finish(*_abort_code(e), started)
            raise
        self._finish(code, message, started)
        return Outcome(rec, code, message)

    def _finish(self, code: int, message: str, started: float) -> None:
        self.timings["total"] = round(time.monotonic() - started, 3)
        self.rec.exit_code = code
        self.rec.status = _status(code)
        self.rec.sections["notes"] = {"message": message}
        self.rec.sections["hosts"] = [h.name for h in self.hosts]
        self.rec.finished = stages.now_iso()
        self.store.save(self.rec)
        for h in self.hosts:
            h.close()

    def _run(self) -> tuple[int, str]:
        checks = load_checks(checks_file_for(self.opts.playbook))
        with ExitStack() as stack:
            # the two slow subprocesses first, so that they overlap with everything up to apply:
            # ansible-lint (unless cached), and ansible-playbook held at its gate before the first play
            early_lint = stages.start_lint(self.opts)
            stack.callback(early_lint.close)
            pending = stack.enter_context(prestart(self._request(), self.ui.task))
            with self._stage("resolve"):
                intents = stages.intents(self.opts)
                self.hosts = [HostRun(n, stages.connector(self.opts, n), expect=stages.expectation(i))
                              for n, i in intents.items()]
            locks = stack.enter_context(ExitStack())  # released before the playbook is stopped
            armed = stack.enter_context(ExitStack())  # guards armed before apply: released if it never starts
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))
            stack.callback(early_lint.stop)  # on an error before lint ends: do not wait for ansible-lint
            lint_f = pool.submit(self._timed, "lint", stages.lint, self.opts, early_lint)
            self._prepare_hosts(locks, armed)
            lint = lint_f.result()
            self.rec.sections["lint"] = lint.to_dict()
            self.store.save(self.rec)
            lint.raise_if_blocking()
            with self._stage("plan"):
                plan = stages.plan(intents, {h.name: h.before for h in self.hosts if h.before},
                                   {h.name: h.expect for h in self.hosts})
            self.rec.sections["plan"] = plan.to_dict()
            plan.raise_if_blocking()
            if plan.warnings and not self.confirm(plan.warnings):
                raise UsageError("the plan has warnings and the run was not confirmed",
                                 "review them, then re-run with --yes")
            if self.opts.check:
                return self._check_mode(pending)
            armed.pop_all()  # apply starts: from here on the guards are confirmed, never just released
            with self._rollback_on_interrupt():
                result = self._apply(pending)
                result.raise_if_interrupted()
            return self._verify_and_rollback(result, checks)
        raise AssertionError("unreachable")  # mypy: ExitStack may swallow exceptions

    # ---- stages ----------------------------------------------------------------------------------------
    def _prepare_hosts(self, locks: ExitStack, armed: ExitStack) -> None:
        """Connect, lock, scan, snapshot and arm every host in parallel; the first error stops the run."""
        with self._stage("connect+lock"):
            for h, t in zip(self.hosts, _parallel(self.hosts, lambda h: h.connect()), strict=True):
                h.transport = t
                locks.enter_context(host_lock(t, self.rec.id))
        for g in self.guards:
            armed.callback(g.release, self.hosts)
        with self._stage("scan+snapshot"):
            _parallel(self.hosts, self._scan_and_snapshot)
        self.rec.sections["scans"] = {h.name: h.before.to_dict() for h in self.hosts if h.before}
        snaps = self.rec.sections.setdefault("snapshots", {})  # the guards noted what they armed there
        for h in self.hosts:
            snaps.setdefault(h.name, {}).update(id=h.snapshot, apt_offset=h.apt_offset)
        self.store.save(self.rec)

    def _scan_and_snapshot(self, h: HostRun) -> None:
        """Both read-only, so at once over two channels of the host's one connection."""
        t = h.transport
        assert t is not None
        if self.opts.check:
            h.before = scan_host(t)
            return
        with ThreadPoolExecutor(max_workers=1) as side:
            scanned = side.submit(lambda: (scan_host(t), apt_log_offset(t)))
            h.snapshot = stages.snapshot(t, self.opts.roots)
            for g in self.guards:  # at once, beside the scan: lint and plan may still stop the run (release)
                g.arm([h])
            h.before, h.apt_offset = scanned.result()

    def _request(self) -> ApplyRequest:
        return ApplyRequest(self.opts.playbook, list(self.opts.inventory), self.opts.limit,
                            list(self.opts.extra_vars), check=self.opts.check)

    def _apply(self, pending: PendingPlaybook) -> ApplyResult:
        with self._stage("apply" if not self.opts.check else "check"):
            self.applied_from = time.time()
            result = pending.go()
        self.rec.sections["apply"] = result.to_dict()
        self.store.save(self.rec)
        return result

    def _check_mode(self, pending: PendingPlaybook) -> tuple[int, str]:
        result = self._apply(pending)
        if not result.ok:
            return ExitCode.ERROR, _apply_failure(result)
        if not result.changed:
            return ExitCode.NOTHING_TO_CHANGE, "check mode: nothing would change"
        return ExitCode.OK, "check mode: changes shown, nothing applied"

    def _verify_and_rollback(self, result: ApplyResult, checks: list[dict[str, Any]]) -> tuple[int, str]:
        good = [h for h in self.hosts if result.host_ok(h.name)]
        applied = time.monotonic()
        way_in = next((r for h in good for r in h.expect.way_in), "")
        wait = f"SSH checked {self.opts.settle:g}s after apply ({way_in})" if way_in and self.opts.settle else ""
        with self._stage("verify", wait):
            _parallel(good, lambda h: self._verify(h, checks, applied))
        self.rec.sections["verify"] = {h.name: h.verify.to_dict() for h in good if h.verify}
        self._confirm_guards(self.hosts)
        switched = self._restored_by_switch()
        if switched:  # shut out after verification: the host restored itself (never report success then)
            bad = [n for n, outcome in switched.items() if outcome != "restored"]
            if bad:
                return ExitCode.ROLLBACK_FAILED, f"unreachable after apply; self-restore not verified: {', '.join(bad)}"
            return ExitCode.ROLLED_BACK, f"unreachable after apply; restored by the dead-man's switch: " \
                f"{', '.join(switched)}"
        failed = [h for h in self.hosts if not result.host_ok(h.name) or (h.verify and not h.verify.ok)]
        if not failed:
            if not result.changed:
                return ExitCode.NOTHING_TO_CHANGE, "nothing to change"
            return ExitCode.OK, f"applied and verified on {len(self.hosts)} host(s)"
        why = _apply_failure(result) if not result.ok else _verify_failure(failed)
        self._rollback(failed)
        bad = [h.name for h in failed if not (h.rollback and h.rollback.restored)]
        if bad:
            return ExitCode.ROLLBACK_FAILED, f"{why}; rollback did not restore {', '.join(bad)}"
        return ExitCode.ROLLED_BACK, f"{why}; rolled back and verified: {', '.join(h.name for h in failed)}"

    def _restored_by_switch(self) -> dict[str, str]:
        """Hosts whose dead-man's switch fired (or should have) instead of being disarmed: name -> outcome."""
        snaps = self.rec.sections.get("snapshots") or {}
        out = {}
        for h in self.hosts:
            outcome = ((snaps.get(h.name) or {}).get("deadman") or {}).get("outcome")
            if outcome in ("restored", "rollback-failed"):
                out[h.name] = str(outcome)
        return out

    def _verify(self, h: HostRun, checks: list[dict[str, Any]], applied: float) -> None:
        """A playbook that touches the way in (sshd, firewall, network, async tasks) may shut us out a moment
        after it ended: then the proof of reach (and the switch's confirmation) waits --settle seconds."""
        assert h.before is not None
        not_before = applied + self.opts.settle if h.expect.way_in else None
        h.verify = verify_host(h.connect, h.before, h.expect, checks, self.opts.settle, current=h.transport,
                               not_before=not_before, handover=lambda t: setattr(h, "verified", t))

    def _rollback(self, hosts: list[HostRun]) -> None:
        with self._stage("rollback"), _signals_deferred():
            _parallel(hosts, self._rollback_one)
        self.rec.sections["rollback"] = {h.name: h.rollback.to_dict() for h in hosts if h.rollback}
        self.store.save(self.rec)

    def _rollback_one(self, h: HostRun) -> None:
        if h.snapshot is None or h.before is None:
            return
        try:
            t = h.connect()
        except SafeapplyError as e:
            h.rollback = RollbackReport(h.name, h.snapshot, errors=[f"connect: {e}"])
            return
        with t:
            h.rollback = rollback_host(t, h.snapshot, h.before, stages.snapshot_ops(),
                                       apt_offset=h.apt_offset, rollback_packages=self.opts.rollback_packages,
                                       tasks_since=self.applied_from)

    @contextmanager
    def _rollback_on_interrupt(self) -> Iterator[None]:
        """Ctrl-C or SIGTERM while the playbook runs: roll every host back, then re-raise."""
        try:
            yield
        except (KeyboardInterrupt, Terminated):
            self.ui.stage("interrupted", "rolling back every host before exiting")
            self._rollback(self.hosts)
            restored = [h for h in self.hosts if h.rollback and h.rollback.restored]
            for g in self.guards:  # disarm where we restored; elsewhere the switch still restores at its deadline
                g.confirm(restored)
            raise

    # ---- helpers ---------------------------------------------------------------------------------------
    @contextmanager
    def _stage(self, name: str, detail: str = "") -> Iterator[None]:
        self.ui.stage(name, detail)
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0) + time.monotonic() - t0, 3)

    def _confirm_guards(self, hosts: list[HostRun]) -> None:
        """Every guard's confirm (after verify), timed as a stage of its own."""
        if not self.guards:
            return
        with self._stage("confirm"):
            for g in self.guards:
                g.confirm(hosts)

    def _timed(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        with self._stage(name):
            return fn(*args)


def _parallel(hosts: list[HostRun], fn: Callable[[HostRun], Any]) -> list[Any]:
    """fn on every host at once; the first SafeapplyError (in host order) is raised after all finish."""
    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
        futures = [pool.submit(fn, h) for h in hosts]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]  # type: ignore[misc]
    return [f.result() for f in futures]


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """A second Ctrl-C/SIGTERM must not cut a rollback short: hold them until it is done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = {s: signal.signal(s, lambda n, _f: got.append(n)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _apply_failure(result: ApplyResult) -> str:
    if result.interrupted_by:
        return "apply interrupted"
    parts = [f"{f.host}: {f.task}: {f.message}" for f in result.failures[:3]]
    last = result.error.splitlines()[-1] if result.error else f"ansible-playbook exited {result.rc}"
    return "apply failed: " + ("; ".join(parts) or last)


def _verify_failure(hosts: list[HostRun]) -> str:
    msgs = [f"{f.host}: {f.message}" for h in hosts if h.verify for f in h.verify.findings]
    return "verification failed: " + "; ".join(msgs[:3])


def _abort_code(e: BaseException) -> tuple[int, str]:
    """The exit code and message the CLI funnel gives for an exception that ends a run."""
    if isinstance(e, KeyboardInterrupt):
        return ExitCode.INTERRUPTED, "interrupted (Ctrl-C)"
    if isinstance(e, Terminated):
        return (ExitCode.TERMINATED if e.signum == signal.SIGTERM else 128 + e.signum), str(e)
    return ExitCode.INTERNAL, f"internal error: {type(e).__name__}: {e}"


def _status(code: int) -> str:
    return {0: "applied", 6: "unchanged", 16: "lint-failed", 17: "blocked", 20: "rolled-back",
            21: "rollback-failed", 4: "locked", 5: "internal-error", 130: "interrupted",
            143: "terminated"}.get(code, f"exit-{code}")
