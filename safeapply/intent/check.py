"""`plan --check`: what Ansible's own check mode resolved for each task, as an `Intent` the same rules read.

The check run's callback (`safeapply/ansible_callbacks/safeapply_check.py`) writes one JSON line per task
result. Here those lines become `CheckTask`s (a loop's items together), and each host's tasks are fed, in the
order Ansible ran them, to the same `Extractor` the static plan uses: a task check mode ran (ok, changed, or
failed with its arguments templated) with Ansible's arguments and rendered file content; a task check mode did
not run (skipped in check mode: command, shell, modules without check support; or after the host stopped at a
failure) as the static plan resolved it — or, when the static plan did not see it either, as not analysed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from safeapply.intent.extract import Extractor, feed
from safeapply.intent.facts import as_variables
from safeapply.intent.load import PlaybookLoader, ResolvedTask, lenient_module_names, lookups_disabled
from safeapply.intent.model import Intent, TaskRef
from safeapply.intent.select import Selection
from safeapply.probe.model import Facts

CONDITION_FALSE = "Conditional result was False"
INCLUDES = ("include_tasks", "include_role", "include_vars", "include")
FACTS = ("gather_facts", "setup")


@dataclass
class CheckTask:
    """One task on one host as Ansible's check mode handled it (a loop's items together)."""

    host: str
    name: str
    raw: dict[str, Any]  # the callback's line for the task (name, action, path, handler, notify, ...)
    status: str  # ok | changed | failed | skipped | unreachable
    items: list[dict[str, Any]] = field(default_factory=list)  # each execution that ran: its args and content
    why: str = ""  # skipped or failed: Ansible's reason

    @property
    def path(self) -> str:
        return str(self.raw.get("path") or "")

    @property
    def action(self) -> str:
        return str(self.raw.get("action") or "").rsplit(".", 1)[-1]

    @property
    def fatal(self) -> bool:
        """A failure no ignore_errors covers: Ansible stops the host here, unless a block's `rescue:` follows."""
        return self.status == "unreachable" or (self.status == "failed" and not self.raw.get("ignore_errors"))

    @property
    def analysed(self) -> bool:
        """Check mode resolved the task's arguments for this host (a failed task's too, when templated)."""
        return self.status in ("ok", "changed", "failed") and all(_templated(i["args"]) for i in self.items)


@dataclass
class CheckRecord:
    """What the check run recorded: per host, its tasks in order; the task the guard stopped before."""

    tasks: dict[str, list[CheckTask]] = field(default_factory=dict)
    refused: list[dict[str, Any]] = field(default_factory=list)  # check_mode false tasks stopped before they ran
    real: list[dict[str, Any]] = field(default_factory=list)  # such tasks let run for real (the user accepted)


def read_record(path: Path) -> CheckRecord:
    out = CheckRecord()
    open_items: dict[str, list[dict[str, Any]]] = {}
    for text in path.read_text(encoding="utf-8", errors="replace").splitlines() if path.exists() else ():
        line = json.loads(text)
        if line["event"] == "refused":
            out.refused.append(line)
        elif line["event"] == "real":
            out.real.append(line)
        elif line["event"] == "result":
            _add_result(out, open_items, line)
    return out


def _add_result(out: CheckRecord, open_items: dict[str, list[dict[str, Any]]], line: dict[str, Any]) -> None:
    host = str(line["host"])
    ran = {"args": line.get("args") or {}, "content": line.get("content")}
    if line.get("item"):
        if line["status"] != "skipped":
            open_items.setdefault(host, []).append(ran)
        return
    items = open_items.pop(host, [])
    if not line.get("loop") and line["status"] != "skipped":
        items = [ran]
    out.tasks.setdefault(host, []).append(CheckTask(host, str(line.get("name") or ""), line, str(line["status"]),
                                                    items, str(line.get("why") or "")))


def _templated(args: Any) -> bool:
    """No template left in the arguments (a task that failed while Ansible templated them keeps its raw ones)."""
    text = json.dumps(args, default=str)
    return "{{" not in text and "{%" not in text


@dataclass
class Merged:
    """One host's intent from check mode, and where each task's analysis came from."""

    intent: Intent
    from_check: set[int] = field(default_factory=set)  # task orders resolved by Ansible's check run
    from_plan: set[int] = field(default_factory=set)  # task orders as the static plan resolved them
    stopped: CheckTask | None = None  # the task this host stopped at (a failure, unreachable)
    appended: int = 0  # static plan tasks after the point check mode reached (it stopped early)


def merge(host: str, basedir: Path, static: Sequence[ResolvedTask], checked: Sequence[CheckTask],
          stopped_early: bool) -> Merged:
    """Feed the host's tasks, in the order Ansible ran them, to one Extractor. `stopped_early`: the check run
    did not reach the end for this host (it stopped at a failure, or before a task the guard refused): the
    static plan's tasks after the last one check mode reached are added as the static plan saw them."""
    groups = _groups(static)
    ex = Extractor(host, basedir)
    out = Merged(ex.intent)
    order, last = 0, -1
    for ct in checked:
        if ct.action in FACTS and not ct.fatal:
            continue  # gathering facts: no task of the play's own (the static plan does not count it either)
        static_order = _take(groups, ct.path, last)
        if static_order is not None:
            last = max(last, static_order)
        rts, source = _for_task(ct, groups.pop(static_order, []) if static_order is not None else [], order)
        if source == "check":
            out.from_check.add(order)
            ex.seen.add(order)  # also a loop over an empty list: analysed, nothing to extract
        elif rts:
            out.from_plan.add(order)
        for rt in rts:
            if source == "check" and ct.action == "template" and rt.content is None:
                _unknown_content(ex, rt)
            else:
                feed(ex, rt)
        if not rts and ct.status == "skipped" and ct.why != CONDITION_FALSE:
            rt = _check_task(ct, order, {"args": {}, "content": None})
            ex.seen.add(order)
            ex.note("not-analysed", f"check mode did not run it ({ct.why or 'skipped'}) and the static plan did not "
                    "see it", rt)
        order += 1
    if checked and checked[-1].fatal:  # a failure a `rescue:` handled is followed by the rescue's tasks
        out.stopped, stopped_early = checked[-1], True
    if stopped_early:
        for static_order in sorted(o for o in groups if o > last):
            for rt in groups[static_order]:
                feed(ex, replace(rt, ref=replace(rt.ref, order=order)))
            out.from_plan.add(order)
            out.appended += 1
            order += 1
    out.intent = ex.finish()
    return out


def _groups(static: Sequence[ResolvedTask]) -> dict[int, list[ResolvedTask]]:
    groups: dict[int, list[ResolvedTask]] = {}
    for rt in static:
        groups.setdefault(rt.ref.order, []).append(rt)
    return groups


def _take(groups: Mapping[int, list[ResolvedTask]], path: str, last: int) -> int | None:
    """The static plan's first task at this file:line not yet matched (after the last matched one first)."""
    same = [o for o, rts in groups.items() if rts and rts[0].ref.path == path]
    later = [o for o in same if o > last]
    return min(later or same) if same else None


def _for_task(ct: CheckTask, static: list[ResolvedTask], order: int) -> tuple[list[ResolvedTask], str]:
    """The resolved tasks to feed for one checked task, and whether they come from check mode or the plan."""
    renumbered = [replace(rt, ref=replace(rt.ref, order=order)) for rt in static]
    if not ct.analysed:
        return renumbered, "plan"
    rts = [_check_task(ct, order, item) for item in ct.items]
    if ct.action == "template" and any(rt.content is None for rt in rts) and renumbered:
        return renumbered, "plan"  # unchanged on the host: check mode shows no diff; render it as the plan does
    return rts, "check"


def _check_task(ct: CheckTask, order: int, item: dict[str, Any]) -> ResolvedTask:
    r = ct.raw
    ref = TaskRef(order=order, play=str(r.get("play") or ""), name=ct.name, action=str(r.get("action") or ""),
                  path=ct.path, handler=bool(r.get("handler")))
    role = SimpleNamespace(_role_path=r["role_path"]) if r.get("role_path") else None
    task = SimpleNamespace(name=r.get("raw_name") or ct.name, get_name=lambda: ct.name, listen=r.get("listen") or [],
                           async_val=r.get("async") or 0, poll=r.get("poll"), _role=role)
    return ResolvedTask(ref=ref, action=ct.action, args=dict(item["args"]), unresolved=[], task=task, templar=None,
                        notify=list(r.get("notify") or []), followed=ct.action in INCLUDES, content=item["content"])


def _unknown_content(ex: Extractor, rt: ResolvedTask) -> None:
    """A template check mode showed no content for (unchanged on the host, or not text), which the static plan did
    not see: the file is written, its content (and so its ports) unknown."""
    feed(ex, replace(rt, action="file", args={"path": rt.args.get("dest")}))
    ex.note("not-analysed", "check mode did not show its rendered content (unchanged on the host, or not text) "
            "and the static plan did not see this task", rt)


@dataclass
class Static:
    """The static plan's tasks per host (resolved with each host's scan facts, lookups disabled), kept to fill in
    what check mode does not run."""

    playbook: Path
    tasks: dict[str, list[ResolvedTask]]
    source: tuple[str, tuple[str, ...], str | None, tuple[str, ...], Any]

    def runs_for_real(self) -> list[dict[str, Any]]:
        """The tasks marked `check_mode: false` (or a template) that the static plan sees, once each: Ansible
        would run them for real in check mode. As the callback's `refused` lines."""
        seen: dict[str, dict[str, Any]] = {}
        for rt in (rt for tasks in self.tasks.values() for rt in tasks):
            value = getattr(rt.task, "check_mode", None)
            if value not in (None, True) and rt.ref.path not in seen:
                seen[rt.ref.path] = {"event": "refused", "check_mode": str(value), "name": rt.ref.name,
                                     "action": rt.ref.action, "path": rt.ref.path, "play": rt.ref.play,
                                     "handler": rt.ref.handler}
        return list(seen.values())


def static_tasks(playbook: Path, inventory: Sequence[str], limit: str | None, extra_vars: Sequence[str],
                 facts: Mapping[str, Facts], selection: Selection) -> Static:
    """Per host of the playbook with scan facts: the tasks as the static plan resolves them."""
    with lookups_disabled(), lenient_module_names():
        loader = PlaybookLoader(playbook, inventory, extra_vars, selection)
        tasks = {h: list(loader.tasks(h, as_variables(facts[h]))) for h in loader.hosts(limit) if h in facts}
    return Static(playbook, tasks, (str(playbook), tuple(inventory), limit, tuple(extra_vars), selection))


def check_intents(static: Static, record: CheckRecord, cut_short: Callable[[str], bool]) -> dict[str, Merged]:
    """Per host: its intent from the check record, and the static plan's tasks where check mode did not run them.
    `cut_short(host)`: the check run ended before this host's last task for a reason not in its own record (the
    guard, another host). Lookups stay disabled while the static tasks' templates are rendered."""
    out: dict[str, Merged] = {}
    with lookups_disabled(), lenient_module_names():
        for host, tasks in static.tasks.items():
            out[host] = merge(host, static.playbook.resolve().parent, tasks, record.tasks.get(host, []),
                              cut_short(host))
            out[host].intent.source = static.source
    return out
