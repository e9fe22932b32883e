"""`safeapply scan` and `safeapply plan`: what runs on the hosts, and what the playbook would collide with."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from safeapply.cli.ansible_opts import ansible_options
from safeapply.cli.app import AcceptNewOpt, InventoryOpt, JsonOpt, LimitOpt, PatternArg, PlaybookArg, app
from safeapply.cli.output import console, emit_json, err_console
from safeapply.cli.run import AllowRealOpt, SkipTagsOpt, StartAtOpt, TagsOpt
from safeapply.errors import PreflightBlocked, SafeapplyError, UsageError

if TYPE_CHECKING:  # imported inside the commands: `import safeapply.cli` stays cheap
    from safeapply.inventory import Host
    from safeapply.scan import HostState

ExtraVarsOpt = Annotated[
    list[str] | None,
    typer.Option("--extra-vars", "-e", help="Extra variables, as for ansible-playbook -e (key=value, YAML, @file)."),
]
StrictPlanOpt = Annotated[
    bool,
    typer.Option("--strict-plan", envvar="SAFEAPPLY_STRICT_PLAN",
                 help="A task the plan could not analyse that may start, install or publish a listener (a unit, "
                 "a container, a service, an include it could not follow) blocks (exit 17) instead of warning."),
]
StateOpt = Annotated[
    Path | None,
    typer.Option("--state", help="Use a saved `safeapply scan --json` output instead of scanning the hosts."),
]
PlanCheckOpt = Annotated[
    bool,
    typer.Option("--check", help="Full fidelity: run the playbook in Ansible's own check mode (ansible-playbook "
                 "--check --diff: it connects to the hosts and runs the modules that support check mode, which "
                 "change nothing; this takes about as long as the play) and plan from the arguments Ansible "
                 "resolved for every task it ran. Lookups run on this machine, as in a run. Prints its cost."),
]


def _scan(hosts: Sequence[Host], accept_new: bool) -> dict[str, HostState | SafeapplyError]:
    from safeapply.parallel import per_host
    from safeapply.scan import scan_host

    def one(h: Host) -> HostState:
        with h.connect(accept_new) as t:
            state = scan_host(t)
        if not console.is_terminal:
            err_console.print(f"scanned {h.name}")
        return state

    if console.is_terminal:
        with console.status(f"scanning {len(hosts)} host(s)..."):
            return per_host(hosts, one)
    return per_host(hosts, one)


def _raise_first(results: dict[str, Any]) -> None:
    errors = [r for r in results.values() if isinstance(r, SafeapplyError)]
    if errors:
        raise errors[0]


@app.command()
@ansible_options
def scan(
    pattern: PatternArg = "all",
    inventory: InventoryOpt = None,
    limit: LimitOpt = None,
    accept_new_host_keys: AcceptNewOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Show what runs on each host: systemd services, sockets and timers, listening TCP/UDP sockets with
    their process and unit, docker/podman containers, quadlet files and basic facts. Read-only: one probe
    program on the host's python3 (as root through the host's become when possible). `--json` output can be fed to
    `safeapply plan --state`."""
    from safeapply.inventory import resolve_hosts
    from safeapply.scan import HostState

    hosts = resolve_hosts(inventory, pattern, limit)
    results = _scan(hosts, accept_new_host_keys)
    if json_out:
        emit_json("scan", {"hosts": {n: r.to_dict() if isinstance(r, HostState) else {"error": str(r)}
                                     for n, r in results.items()}})
    else:
        for name, r in results.items():
            if isinstance(r, HostState):
                _render_state(r)
            else:
                console.print(f"[red]FAIL[/] {name}: {escape(str(r))}")
    _raise_first(results)


def _render_state(s: HostState) -> None:
    from rich.table import Table

    from safeapply.redact import clean_terminal

    def c(text: object) -> str:  # every field comes from the host: no control sequence, no markup reaches the screen
        return escape(clean_terminal(str(text)))

    f = s.facts
    free = ", ".join(f"{c(k)} {v / 2**30:.1f} GiB free" for k, v in f.disk_free.items() if v is not None)
    console.print(f"[bold]{c(s.host)}[/]: {c(f.os_pretty or f.os_id)}, init {c(f.init)}, {free}, "
                  f"bindv6only={int(f.bindv6only)}")
    t = Table("proto", "address", "port", "pid", "process", "unit", box=None, pad_edge=False)
    for lst in s.listeners:
        o = lst.owner
        ct = s.container_of(lst)
        t.add_row(lst.proto, c(lst.address), str(lst.port), str(o.pid) if o else "-", c(o.process) if o else "-",
                  c(f"container {ct.name}") if ct else c(o.unit or "-") if o else "-")
    console.print(t)
    units = [u for u in s.units if u.active in ("active", "failed", "activating") or u.enabled == "enabled"]
    t = Table("unit", "active", "sub", "enabled", "pid", "restarts", box=None, pad_edge=False)
    for u in units:
        t.add_row(c(u.name), c(u.active), c(u.sub), c(u.enabled or "-"), str(u.main_pid or "-"), str(u.n_restarts))
    console.print(t)
    for ct in s.containers:
        ports = ", ".join(f"{p.host_ip or '*'}:{p.host_port}->{p.container_port}/{p.proto}" for p in ct.ports)
        console.print(clean_terminal(f"  container {ct.name} ({ct.engine}, {ct.image}) {ct.state} {ports} "
                                     f"restart={ct.restart_policy or '-'} net={ct.network_mode or '-'}"),
                      markup=False)
    for q in s.quadlets:
        console.print(clean_terminal(f"  quadlet {q.path}: {q.image} publish={','.join(q.publish) or '-'}"),
                      markup=False)
    for n in s.notes:
        console.print(f"  [dim]note: {c(n)}[/]")


def _load_states(path: Path) -> dict[str, HostState]:
    from safeapply.scan import HostState

    try:
        data = json.loads(path.read_text())
        data = data["hosts"] if "schema" in data else data  # `scan --json`, or a bare map of hosts
        return {name: HostState.from_dict(d) for name, d in data.items() if "error" not in d}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"cannot read scan state {path}: {e}", "pass the output of `safeapply scan --json`") \
            from e


@app.command("plan")
@ansible_options
def plan_cmd(
    playbook: PlaybookArg,
    inventory: InventoryOpt = None,
    limit: LimitOpt = None,
    extra_vars: ExtraVarsOpt = None,
    state: StateOpt = None,
    accept_new_host_keys: AcceptNewOpt = False,
    strict_plan: StrictPlanOpt = False,
    tags: TagsOpt = None,
    skip_tags: SkipTagsOpt = None,
    start_at_task: StartAtOpt = None,
    check: PlanCheckOpt = False,
    allow_check_mode_false: AllowRealOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Compare what the playbook will bind, start and write on each host with what the host runs now, in task
    order: a port still held (by a unit, process or container the play has not stopped by then) when a task
    or handler starts a new listener on it, the same service as a unit and a container, two listeners of the
    play on one port at once, units it starts that are failed or restart-looping. Variables are resolved per
    host by Ansible itself, with lookups disabled: no lookup, pipe or shell-out runs on this machine; a value
    that needs one is reported as unresolved, naming its task (the project's own filter plugins do run, as in
    ansible-playbook; `run` resolves only after lint passed). Every task that could not be analysed is a
    warning (--strict-plan: blocking when it may start a listener). Exits 17 (preflight blocked) when any
    finding blocks; warnings alone exit 0. Read-only on the hosts. With -t/--tags, --skip-tags,
    --start-at-task only the tasks ansible-playbook would run with them are planned (as `run` does). With --check,
    Ansible's own check mode resolves the tasks (see --check); without it nothing runs on the hosts but the scan."""
    from safeapply import run_stages as stages
    from safeapply.intent import playbook_intent
    from safeapply.intent.select import parse
    from safeapply.inventory import resolve_hosts
    from safeapply.plan import expectations, verdict
    from safeapply.scan import HostState

    selection = parse(tags or [], skip_tags or [], start_at_task)
    intents = playbook_intent(playbook, inventory or [], limit, extra_vars or [], selection=selection)
    for i in intents.values():
        i.strict_plan = strict_plan
    states: dict[str, HostState | SafeapplyError] = dict(_load_states(state)) if state else {}
    todo = [h for h in resolve_hosts(inventory, "all", limit) if h.name in intents and h.name not in states]
    states.update(_scan(todo, accept_new_host_keys))
    scans = {h: s for h, s in states.items() if isinstance(s, HostState)}
    outcome = stages.plan(intents, scans, {h: stages.expectation(i) for h, i in intents.items()})  # as `run` does
    intents |= outcome.intents  # resolved again with each host's facts where something was not analysed
    report: dict[str, Any] = {}
    for host, intent in intents.items():
        if host not in outcome.findings:
            report[host] = {"error": str(states.get(host) or "not scanned")}
            continue
        findings = outcome.findings[host]
        report[host] = {"verdict": verdict(intent, findings), "tasks": intent.tasks,
                        "not_analysed": intent.not_analysed, "findings": [f.to_dict() for f in findings],
                        "intent": intent.to_dict(), "expect": expectations(intent).__dict__}
    blocked = outcome.blocking
    if check:
        blocked = _check(playbook, inventory or [], limit, extra_vars or [], selection, scans, strict_plan,
                         allow_check_mode_false, (tags or [], skip_tags or [], start_at_task), report, json_out)
    _render_plan(report, json_out)
    _raise_first(states)
    if blocked:
        hosts = sorted({f.host for f in blocked})
        raise PreflightBlocked(f"{len(blocked)} blocking finding(s) on {', '.join(hosts)}",
                               "fix them (see the fix line of each), then run plan again")


def _check(playbook: Path, inventory: list[str], limit: str | None, extra_vars: list[str], selection: Any,
           scans: dict[str, HostState], strict_plan: bool, allow_real: bool,
           tagging: tuple[list[str], list[str], str | None], report: dict[str, Any], json_out: bool) -> list[Any]:
    """`plan --check`: each scanned host's report replaced by the plan from Ansible's check mode."""
    from safeapply.apply import ApplyRequest
    from safeapply.plan import expectations
    from safeapply.plan_check import check_plan, verdict

    tags, skip_tags, start_at_task = tagging
    req = ApplyRequest(playbook, inventory, limit, extra_vars, tags=tags, skip_tags=skip_tags,
                       start_at_task=start_at_task)
    if console.is_terminal and not json_out:
        with console.status("running the playbook in Ansible's check mode..."):
            cp = check_plan(req, selection, scans, strict_plan, allow_real)
    else:
        cp = check_plan(req, selection, scans, strict_plan, allow_real)
    for host, h in cp.hosts.items():
        report[host] = {"verdict": verdict(h, cp), "tasks": h.intent.tasks,
                        "not_analysed": h.intent.not_analysed, "intent": h.intent.to_dict(),
                        "findings": [f.to_dict() | {"seen_by": h.seen_by(f)} for f in h.findings],
                        "expect": expectations(h.intent).__dict__, "check": h.to_dict() | {"seconds": cp.seconds}}
    if not json_out:
        console.print(cp.cost(), markup=False)
    return cp.blocking


def _render_plan(report: dict[str, Any], json_out: bool) -> None:
    from safeapply.plan import BLOCKING

    if json_out:
        emit_json("plan", {"hosts": report})
        return
    for host, r in report.items():
        if "error" in r:
            console.print(f"[red]FAIL[/] {host}: {escape(r['error'])}")
            continue
        head = f"[bold]{host}[/]: {len(r['intent']['binds'])} port(s), {len(r['intent']['units'])} unit op(s), " \
               f"{len(r['intent']['containers'])} container(s), {len(r['intent']['files'])} file(s)"
        console.print(head)
        for f in r["findings"]:
            tag = "[red]BLOCK[/]" if f["severity"] == BLOCKING else "[yellow]warn[/] "
            seen = " [dim](as the static plan saw it: check mode did not run this task)[/]" \
                if f.get("seen_by") == "plan" else ""
            console.print(f"  {tag} {f['code']}: {escape(f['message'])}{seen}")
            console.print(f"        fix: {escape(f['fix'])}")
        colour = "red" if any(f["severity"] == BLOCKING for f in r["findings"]) else \
            "yellow" if r["not_analysed"] else "green"
        console.print(f"  [{colour}]{escape(r['verdict'])}[/]")
