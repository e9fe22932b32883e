"""`safeapply plan --check` and `safeapply run --plan-check`: the plan, with Ansible's own check mode resolving it.

ansible-playbook runs the playbook with `--check --diff` (through `apply.run_playbook`, as `run --check` does);
its `safeapply_check` callback records every task's arguments as Ansible templated them for each host, and a
template's or copy's rendered content. `intent.check` turns that into each host's `Intent` (the static plan's
view of the tasks check mode did not run) and the same rules (`plan.plan`) give the findings.

Check mode changes nothing on the hosts, except tasks marked `check_mode: false` (Ansible runs those for real):
the callback stops ansible-playbook before such a task unless `allow_real`; the plan then blocks, naming it.
Lookups in the playbook run on this machine during the check run, as they would during `run`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from safeapply import plan as planner
from safeapply.apply import ApplyRequest, ApplyResult, run_playbook
from safeapply.intent.check import CheckRecord, Merged, check_intents, read_record, static_tasks
from safeapply.intent.model import Intent, TaskRef
from safeapply.intent.select import Selection
from safeapply.probe.model import HostState

REFUSED_FIX = ("let it run for real during the check with --allow-check-mode-false (it changes the host if it "
               "changes anything), or remove `check_mode: false` from it")


@dataclass
class HostCheck:
    intent: Intent
    findings: list[planner.Finding]
    from_check: set[int]  # task orders whose analysis comes from Ansible's check run
    from_plan: set[int]  # task orders check mode did not run, as the static plan resolved them
    stopped: str = ""  # why check mode did not reach this host's last task

    def seen_by(self, f: planner.Finding) -> str:
        """Where a finding's task was analysed: "check" (Ansible's check run) or "plan" (the static plan)."""
        return "plan" if f.task is not None and f.task.order in self.from_plan else "check"

    def to_dict(self) -> dict[str, Any]:
        return {"from_check": len(self.from_check), "from_plan": len(self.from_plan), "stopped": self.stopped}


@dataclass
class CheckPlan:
    seconds: float  # wall time of the check run (ansible-playbook --check)
    ran: bool = True  # False: not started (tasks with check_mode false, not allowed)
    hosts: dict[str, HostCheck] = field(default_factory=dict)

    def cost(self) -> str:
        """The line `plan --check` prints."""
        if not self.ran:
            return "plan --check: Ansible's check mode was not run: a task has check_mode: false (see the findings)"
        return f"plan --check: Ansible's check mode (ansible-playbook --check --diff) ran in {self.seconds:.1f} s"

    @property
    def blocking(self) -> list[planner.Finding]:
        return [f for h in self.hosts.values() for f in planner.blocking(h.findings)]


def check_plan(req: ApplyRequest, selection: Selection, scans: Mapping[str, HostState], strict_plan: bool = False,
               allow_real: bool = False) -> CheckPlan:
    """Run Ansible's check mode for `req` (its playbook, inventory, limit, -e, tags, pass-through options) and
    plan each scanned host from what it resolved. Tasks with `check_mode: false` the static plan sees stop it before
    it starts, unless `allow_real`. Ctrl-C / SIGTERM during the check run are re-raised."""
    static = static_tasks(req.playbook, list(req.inventory), req.limit, list(req.extra_vars),
                          {h: s.facts for h, s in scans.items()}, selection)
    record, result, seconds = CheckRecord(refused=static.runs_for_real()), None, 0.0
    if allow_real or not record.refused:
        record, result, seconds = _run(req, allow_real)
    merged = check_intents(static, record, lambda h: bool(record.refused) or result is None or (
        result.rc != 0 and not (record.tasks.get(h) and record.tasks[h][-1].fatal)))
    out = CheckPlan(seconds, ran=result is not None)
    for host, m in merged.items():
        m.intent.strict_plan = strict_plan
        extra = _check_findings(host, m, record, result)
        findings = sorted(planner.plan(m.intent, scans[host]) + extra,
                          key=lambda f: (f.severity != planner.BLOCKING, f.task.order if f.task else -1))
        out.hosts[host] = HostCheck(m.intent, findings, m.from_check, m.from_plan, _stopped(m, record, result))
    return out


def _run(req: ApplyRequest, allow_real: bool) -> tuple[CheckRecord, ApplyResult, float]:
    with tempfile.TemporaryDirectory(prefix="safeapply-check-") as tmp:
        path = Path(tmp) / "record.jsonl"
        env = {**req.envvars, "SAFEAPPLY_CHECK_RECORD": str(path), "SAFEAPPLY_CHECK_ALLOW_REAL": str(int(allow_real))}
        started = time.monotonic()
        result = run_playbook(replace(req, check=True, envvars=env, verbosity=0, log=None))
        seconds = time.monotonic() - started
        result.raise_if_interrupted()
        return read_record(path), result, seconds


def _ref(line: dict[str, Any]) -> TaskRef:
    return TaskRef(order=-1, play=str(line.get("play") or ""), name=str(line.get("name") or ""),
                   action=str(line.get("action") or ""), path=str(line.get("path") or ""),
                   handler=bool(line.get("handler")))


def _check_findings(host: str, m: Merged, record: CheckRecord, result: ApplyResult | None) -> list[planner.Finding]:
    out = []
    for line in record.refused:
        ref = _ref(line)
        out.append(planner.Finding(host, planner.BLOCKING, "check-mode-false",
                                   f"{ref} has check_mode: {line.get('check_mode')}: Ansible runs it for real even "
                                   "in check mode, so the check run stopped before it (it ran nowhere)", REFUSED_FIX,
                                   ref))
    for line in record.real:
        ref = _ref(line)
        out.append(planner.Finding(host, planner.WARNING, "check-mode-false",
                                   f"{ref} has check_mode: {line.get('check_mode')}: it ran for real during the check "
                                   "run (--allow-check-mode-false)", "check what it did on the host", ref))
    stopped = _stopped(m, record, result)
    if stopped:
        out.append(planner.Finding(host, planner.WARNING, "check-stopped", stopped,
                                   "make the play pass `ansible-playbook --check` (for a unit an earlier task "
                                   "installs: `ignore_errors: \"{{ ansible_check_mode }}\"`), or check by hand",
                                   _stopped_ref(m)))
    return out


def _stopped_ref(m: Merged) -> TaskRef | None:
    return None if m.stopped is None else _ref(m.stopped.raw)


def _stopped(m: Merged, record: CheckRecord, result: ApplyResult | None) -> str:
    after = f"the {m.appended} task(s) after it are as the static plan saw them" if m.appended else \
        "no task the static plan saw comes after it"
    if m.stopped is not None:
        why = m.stopped.why.splitlines()[0] if m.stopped.why else m.stopped.status
        return f"check mode stopped on this host at {_ref(m.stopped.raw)} ({m.stopped.status}: {why}); {after}"
    if record.refused or result is None:
        return ""  # the blocking check-mode-false finding says it
    if result.rc != 0 and not m.from_check:
        last = result.error.splitlines()[-1] if result.error else f"ansible-playbook exited {result.rc}"
        return f"check mode did not run on this host ({last}); every task is as the static plan saw it"
    if result.rc != 0 and m.appended:
        return f"the check run ended early (ansible-playbook exited {result.rc}); {after}"
    return ""


def verdict(h: HostCheck, cp: CheckPlan) -> str:
    """The plan's verdict, saying where its analysis came from."""
    if not cp.ran:
        return f"{planner.verdict(h.intent, h.findings)} (check mode not run: every task as the static plan saw it)"
    return (f"{planner.verdict(h.intent, h.findings)} (check mode: {len(h.from_check)} task(s) resolved by "
            f"Ansible's check run in {cp.seconds:.1f} s, {len(h.from_plan)} as the static plan saw them)")
