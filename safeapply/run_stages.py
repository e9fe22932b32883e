"""Thin adapters between the run pipeline and the modules it drives (lint, intent+plan, snapshot, hosts).

Kept apart from `run.py` so that the pipeline reads as the stage order and nothing else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safeapply.errors import LintFailed, PreflightBlocked, Terminated, UsageError
from safeapply.inventory import Host, resolve_hosts
from safeapply.scan import HostState
from safeapply.transport.base import Transport
from safeapply.verify import Expectation

if TYPE_CHECKING:
    from safeapply.intent import Intent
    from safeapply.lint.engine import EarlyLint
    from safeapply.records import RunRecord
    from safeapply.rollback import RollbackReport
    from safeapply.run import RunOptions

__all__ = ["Terminated", "connector", "intents", "lint", "now_iso", "plan", "rollback_run", "snapshot", "snapshot_ops",
           "start_lint"]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# ---- hosts ------------------------------------------------------------------------------------------

_HOSTS: dict[tuple[tuple[str, ...], str | None], dict[str, Host]] = {}


def _hosts(opts: RunOptions) -> dict[str, Host]:
    key = (tuple(opts.inventory), opts.limit)
    if key not in _HOSTS:
        _HOSTS[key] = {h.name: h for h in resolve_hosts(list(opts.inventory), "all", opts.limit)}
    return _HOSTS[key]


def connector(opts: RunOptions, name: str) -> Callable[[], Transport]:
    """A fresh, checked connection each call (python3 and sudo -n verified: the documented errors)."""
    from safeapply.preflight import check

    host = _hosts(opts)[name]

    def connect() -> Transport:
        t = host.connect(opts.accept_new_host_keys)
        try:
            check(t)
        except BaseException:
            t.close()
            raise
        return t

    return connect


def intents(opts: RunOptions) -> dict[str, Intent]:
    """Per host the playbook runs on (its plays' `hosts:` and --limit): what it will do there."""
    from safeapply.intent import playbook_intent

    return playbook_intent(opts.playbook, list(opts.inventory), opts.limit, list(opts.extra_vars))


# ---- lint -------------------------------------------------------------------------------------------

@dataclass
class LintOutcome:
    report: Any

    def to_dict(self) -> dict[str, Any]:
        return dict(self.report.to_dict())

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


def lint(opts: RunOptions, early: EarlyLint | None = None) -> LintOutcome:
    from safeapply.lint import Connection, lint_paths

    conns = {}
    for name, h in _hosts(opts).items():
        v = h.vars
        conns[name] = Connection(user=str(v.get("ansible_user") or "root"), port=int(v.get("ansible_port") or 22),
                                 password_auth=bool(v.get("ansible_password") or v.get("ansible_ssh_pass")))
    return LintOutcome(lint_paths([opts.playbook], connection=conns, known_vars=extra_var_names(opts.extra_vars),
                                  early=early))


def extra_var_names(extra_vars: Sequence[str]) -> frozenset[str]:
    """Names that -e defines (k=v pairs, JSON/YAML, @file): lint must not call them undefined."""
    import shlex

    import yaml

    names: set[str] = set()
    for ev in extra_vars:
        text = ev
        if ev.startswith("@"):
            try:
                text = Path(ev[1:]).read_text()
            except OSError:
                continue
        if text.lstrip().startswith(("{", "---")) or ev.startswith("@"):
            try:
                doc = yaml.safe_load(text)
            except yaml.YAMLError:
                doc = None
            if isinstance(doc, dict):
                names.update(str(k) for k in doc)
            continue
        names.update(t.split("=", 1)[0] for t in shlex.split(text) if "=" in t)
    return frozenset(names)


# ---- plan -------------------------------------------------------------------------------------------

@dataclass
class PlanOutcome:
    findings: dict[str, list[Any]] = field(default_factory=dict)
    expectations: dict[str, Expectation] = field(default_factory=dict)

    @property
    def blocking(self) -> list[Any]:
        return [f for fs in self.findings.values() for f in fs if f.severity == "blocking"]

    @property
    def warnings(self) -> list[str]:
        return [f"{f.host}: {f.message}" for fs in self.findings.values() for f in fs if f.severity != "blocking"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "findings": {h: [f.to_dict() for f in fs] for h, fs in self.findings.items()},
            "expect": {h: {"units": sorted(e.units), "ports": sorted(e.ports), "containers": sorted(e.containers)}
                       for h, e in self.expectations.items()},
        }

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

    out = PlanOutcome()
    for host, intent in intents_.items():
        if host not in scans:
            continue
        out.findings[host] = planner.plan(intent, scans[host])
        out.expectations[host] = expects[host]
    return out


def expectation(intent: Intent) -> Expectation:
    """What should run after the playbook (from the playbook alone: known before any scan)."""
    from safeapply import plan as planner

    e = planner.expectations(intent)
    return Expectation(units=frozenset(e.units_active), ports=frozenset((b.proto, b.port) for b in e.ports),
                       containers=frozenset(e.containers_running), way_in=tuple(intent.way_in))


# ---- snapshot ---------------------------------------------------------------------------------------

def snapshot(transport: Transport, roots: Sequence[str]) -> str:
    from safeapply.snapshot.capture import take

    return take(transport, roots).id


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


# ---- `safeapply rollback RUN` -----------------------------------------------------------------------

def rollback_run(rec: RunRecord, accept_new: bool, rollback_packages: bool) -> list[RollbackReport]:
    """Return each host of a recorded run to its pre-run snapshot and scan, under the host lock."""
    from safeapply.lock import host_lock
    from safeapply.rollback import rollback_host

    snaps = rec.sections.get("snapshots") or {}
    scans = rec.sections.get("scans") or {}
    todo = {h: s for h, s in snaps.items() if s and s.get("id") and h in scans}
    if not todo:
        raise UsageError(f"run {rec.id} has no snapshot to return to", "it stopped before taking one")
    hosts = {h.name: h for h in resolve_hosts(list(rec.sections.get("inventory") or []), "all")}
    reports = []
    for name, snap in sorted(todo.items()):
        if name not in hosts:
            raise UsageError(f"host {name} of run {rec.id} is not in its inventory any more")
        with hosts[name].connect(accept_new) as t, host_lock(t, f"rollback-{rec.id}"):
            reports.append(rollback_host(t, snap["id"], HostState.from_dict(scans[name]), snapshot_ops(),
                                         apt_offset=snap.get("apt_offset"),
                                         rollback_packages=rollback_packages))
    return reports
