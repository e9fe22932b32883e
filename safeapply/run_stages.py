"""Thin adapters between the run pipeline and the modules it drives (hosts, lint, intent+plan, snapshot,
metrics, notify), each returning a typed result. Kept apart from `run.py` so that the pipeline reads as the
stage order and nothing else; `safeapply plan` calls the same `plan` stage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from safeapply.errors import LintFailed, PreflightBlocked
from safeapply.inventory import Host, resolve_hosts
from safeapply.scan import HostState
from safeapply.transport.base import Transport
from safeapply.verify import Expectation

if TYPE_CHECKING:
    from safeapply.apply import ApplyRequest
    from safeapply.intent import Intent
    from safeapply.lint.engine import EarlyLint
    from safeapply.lint.model import LintReport
    from safeapply.plan import Finding as PlanFinding
    from safeapply.records import RunRecord, RunStore
    from safeapply.run_options import RunOptions

__all__ = ["connector", "intents", "lint", "notify", "now_iso", "plan", "plan_check", "resolve", "snapshot",
           "snapshot_ops", "start_lint", "target_hosts", "write_metrics"]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# ---- hosts ------------------------------------------------------------------------------------------

def resolve(opts: RunOptions) -> dict[str, Host]:
    """The inventory's hosts (under --limit), resolved once per run by Ansible's own inventory code."""
    return {h.name: h for h in resolve_hosts(list(opts.inventory), "all", opts.limit)}


def target_hosts(opts: RunOptions) -> list[str] | None:
    """The hosts the playbook's plays name (`hosts:` as written, under --limit), read before lint without
    templating anything; None when a `hosts:` or an imported playbook's path is a template (then only the
    playbook's resolution knows, and it waits for lint)."""
    from safeapply.ansible_context import get
    from safeapply.intent.load import host_patterns, matching_hosts

    ctx = get(list(opts.inventory) or None, list(opts.extra_vars))
    patterns = host_patterns(opts.playbook, ctx.loader)
    return None if patterns is None else matching_hosts(ctx.inventory, patterns, opts.limit)


def connector(host: Host, opts: RunOptions) -> Callable[[], Transport]:
    """A fresh, checked connection each call (python3 and become to root verified: the documented errors)."""
    from safeapply.preflight import check

    def connect() -> Transport:
        t = host.connect(opts.accept_new_host_keys)
        try:
            check(t)
        except BaseException:
            t.close()
            raise
        return t

    return connect


def inventory_sources(opts: RunOptions) -> list[str]:
    """The inventory the run reads: -i, else ansible.cfg's (as the record keeps it: absolute paths)."""
    from safeapply.ansible_context import absolute_source, get

    return [absolute_source(s) for s in get(list(opts.inventory) or None).sources]


def machine_id(transport: Transport) -> str:
    """/etc/machine-id of the host ("" when it has none): which machine a snapshot was taken of."""
    res = transport.run(["cat", "/etc/machine-id"], timeout=30)
    return res.text.strip() if res.ok else ""


def intents(opts: RunOptions) -> dict[str, Intent]:
    """Per host the playbook runs on (its plays' `hosts:` and --limit): what it will do there — only the tasks
    ansible-playbook will run with the same --tags, --skip-tags, --start-at-task (and those after `--`)."""
    from safeapply.intent import playbook_intent
    from safeapply.intent.select import parse

    selection = parse(opts.tags, opts.skip_tags, opts.start_at_task, opts.ansible_args)
    out = playbook_intent(opts.playbook, list(opts.inventory), opts.limit, list(opts.extra_vars),
                          selection=selection)
    for i in out.values():
        i.strict_plan = opts.strict_plan  # read by the plan stage: unanalysed port-bearing tasks block
    return out


def needs_tty(transport: Transport, opts: RunOptions) -> bool:
    """With the speedups on: does sudo on the host need a terminal (`Defaults requiretty`)? (See `apply_env`.)"""
    from safeapply.preflight import sudo_needs_tty

    return opts.speedups and sudo_needs_tty(transport)


def apply_env(opts: RunOptions, tty_hosts: Sequence[str]) -> tuple[dict[str, str], str]:
    """The requiretty fallback Ansible documents: SSH pipelining gives sudo no terminal, so a run with a host
    whose sudo needs one goes without pipelining (on all its hosts). Returns (environment, why) or ({}, "")."""
    if not opts.speedups or not tty_hosts:
        return {}, ""
    return {"ANSIBLE_PIPELINING": "False"}, (
        f"SSH pipelining off for this run: sudo needs a terminal on {', '.join(sorted(tty_hosts))} (requiretty)")


# ---- lint -------------------------------------------------------------------------------------------

@dataclass
class LintOutcome:
    report: LintReport

    def to_dict(self) -> dict[str, Any]:
        return self.report.to_dict()

    def raise_if_blocking(self) -> None:
        bad = self.report.blocking
        if bad:
            first = bad[0]
            raise LintFailed(f"lint: {len(bad)} blocking finding(s); first: {first.location}: {first.message}",
                             first.fix or "fix the playbook, or see `safeapply lint` for all findings")


def start_lint(opts: RunOptions) -> EarlyLint:
    """ansible-lint starts now (no inventory needed), unless its result for this content is cached."""
    from safeapply.lint.engine import start

    return start([opts.playbook])


def lint(opts: RunOptions, hosts: dict[str, Host], early: EarlyLint | None = None) -> LintOutcome:
    """Lint with what the run knows: each host's login user and port, and every inventory variable name."""
    from safeapply.lint import Connection, lint_paths

    conns = {}
    for name, h in hosts.items():
        v = h.vars
        conns[name] = Connection(user=login_user(h), port=int(v.get("ansible_port") or 22),
                                 password_auth=bool(v.get("ansible_password") or v.get("ansible_ssh_pass")))
    known = extra_var_names(opts.extra_vars).union(*(h.var_names for h in hosts.values()))
    return LintOutcome(lint_paths([opts.playbook], connection=conns, known_vars=known, early=early,
                                  strict_tools=opts.strict_lint, accept=opts.accept))


def login_user(host: Host) -> str:
    """Who Ansible logs in as: the local user for a local connection; else ansible_user, else ansible.cfg's
    remote_user, else what ssh would use (its config's User, else the local user)."""
    import getpass

    from ansible import constants as C

    if host.is_local:
        return getpass.getuser()
    if host.vars.get("ansible_user"):
        return str(host.vars["ansible_user"])
    if C.DEFAULT_REMOTE_USER:
        return str(C.DEFAULT_REMOTE_USER)
    from safeapply.transport.sshconfig import ssh_target

    return ssh_target(host.name, host.vars).user


def extra_var_names(extra_vars: Sequence[str]) -> frozenset[str]:
    """Names that -e defines, read by Ansible's own parser (the one intent resolution uses)."""
    from safeapply.ansible_context import get

    return frozenset(get(extra_vars=list(extra_vars)).extra_vars)


# ---- plan -------------------------------------------------------------------------------------------

@dataclass
class PlanOutcome:
    findings: dict[str, list[PlanFinding]] = field(default_factory=dict)
    expectations: dict[str, Expectation] = field(default_factory=dict)
    intents: dict[str, Intent] = field(default_factory=dict)  # as planned: resolved again with scan facts
    check: dict[str, Any] = field(default_factory=dict)  # plan --check: its cost and, per host, where tasks came from

    @property
    def blocking(self) -> list[PlanFinding]:
        return [f for fs in self.findings.values() for f in fs if f.severity == "blocking"]

    @property
    def warnings(self) -> list[str]:
        return [f"{f.host}: {f.message}" for fs in self.findings.values() for f in fs if f.severity != "blocking"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "findings": {h: [f.to_dict() for f in fs] for h, fs in self.findings.items()},
            "expect": {h: {"units": sorted(e.units), "ports": sorted(e.ports), "containers": sorted(e.containers),
                           "named_containers": sorted(e.named_containers)}
                       for h, e in self.expectations.items()},
        } | ({"check": self.check} if self.check else {})

    def raise_if_blocking(self) -> None:
        bad = self.blocking
        if bad:
            first = bad[0]
            raise PreflightBlocked(f"plan: {len(bad)} blocking collision(s); {first.host}: {first.message}",
                                   first.fix)


def plan(intents_: dict[str, Intent], scans: dict[str, HostState],
         expects: dict[str, Expectation]) -> PlanOutcome:
    """Findings per scanned host; `expects` (each host's `expectation`, known since resolve) is recorded."""
    from safeapply import plan as planner
    from safeapply.intent import with_facts

    out = PlanOutcome()
    intents_ = with_facts(intents_, {h: s.facts for h, s in scans.items()})  # includes picked by facts
    for host, intent in intents_.items():
        if host not in scans:
            continue
        out.findings[host] = planner.plan(intent, scans[host])
        out.intents[host] = intent
        out.expectations[host] = expects[host]
    return out


def plan_check(opts: RunOptions, outcome: PlanOutcome, scans: dict[str, HostState],
               request: ApplyRequest) -> PlanOutcome:
    """`run --plan-check`: the findings from Ansible's own check mode (`request`, the apply's, run with --check)
    replace the static plan's; the expectations (known since resolve) stay."""
    from dataclasses import replace

    from safeapply.intent.select import parse
    from safeapply.plan_check import check_plan

    selection = parse(opts.tags, opts.skip_tags, opts.start_at_task, opts.ansible_args)
    cp = check_plan(replace(request, log=None), selection, scans, opts.strict_plan, opts.allow_check_mode_false)
    out = PlanOutcome(expectations=outcome.expectations)
    for host, h in cp.hosts.items():
        out.findings[host], out.intents[host] = h.findings, h.intent
    out.check = {"seconds": round(cp.seconds, 3), "ran": cp.ran, "cost": cp.cost(),
                 "hosts": {h: c.to_dict() for h, c in cp.hosts.items()}}
    return out


def expectation(intent: Intent, login: str | None = None) -> Expectation:
    """What should run after the playbook (from the playbook alone: known before any scan). `login`: the
    host's login user; an account task is a way in only if it touches that account (unknown: any is)."""
    from safeapply import plan as planner

    e = planner.expectations(intent)
    accounts = [r for r, account in intent.way_in_accounts.items() if login in (None, account)]
    return Expectation(units=frozenset(e.units_active), ports=frozenset((b.proto, b.port) for b in e.ports),
                       containers=frozenset(e.containers_running), way_in=(*intent.way_in, *accounts),
                       named_containers=frozenset(c.name for c in intent.containers if c.name))


# ---- snapshot ---------------------------------------------------------------------------------------

def snapshot(transport: Transport, roots: Sequence[str]) -> str:
    from safeapply.snapshot.capture import take

    return take(transport, roots).id


def pre_run_listing(snapshot_id: str | None) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    """The snapshot's manifest as a listing of its roots (what a self-restore is compared with), and the roots."""
    if snapshot_id is None:
        return None, ()
    from safeapply.snapshot.store import Store

    manifest = Store().load(snapshot_id)
    return manifest.by_path(), tuple(manifest.roots)


class _SnapshotOps:
    def restore(self, transport: Transport, snapshot_id: str) -> list[str]:
        from safeapply.snapshot.restore import restore

        report = restore(transport, snapshot_id)
        return [c["path"] for c in report.changes if c.get("action") != "skipped"]

    def diff(self, transport: Transport, snapshot_id: str) -> list[str]:
        from safeapply.snapshot.diff import diff

        _sid, changes = diff(transport, snapshot_id)
        return [f"{c.path} ({c.kind})" for c in changes]


def snapshot_ops() -> _SnapshotOps:
    return _SnapshotOps()


# ---- after the run: metrics and notification ---------------------------------------------------------

def write_metrics(opts: RunOptions, rec: RunRecord, store: RunStore, code: int, seconds: float) -> str | None:
    """node_exporter metrics for the run; the reason when they could not be written (never raises)."""
    import time

    from safeapply import metrics

    assert opts.metrics_dir is not None
    try:
        metrics.write(opts.metrics_dir, metrics.RunMetrics(
            opts.playbook.stem, code, time.time(), seconds, bool(rec.sections.get("rollback")),
            store.count_rollbacks(rec.playbook)))
    except OSError as e:
        return str(e)
    return None


def notify(opts: RunOptions, rec: RunRecord, message: str) -> str:
    """POST the run's end to --notify; "delivered" or why not."""
    from safeapply import notify as notifier
    from safeapply.redact import redact_text

    assert opts.notify_url is not None
    title, body = f"safeapply: {rec.status}", f"run {rec.id}: {rec.status} (exit {rec.exit_code})"
    if opts.notify_details:  # a third party reads it: hosts and playbook only when asked, secrets never
        title = f"{title} ({opts.playbook.name})"
        body = f"run {rec.id} on {', '.join(rec.sections.get('hosts') or [])}: {redact_text(message)}"
    error = notifier.post(opts.notify_url, title, body)
    return error or "delivered"
