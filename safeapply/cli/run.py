"""`safeapply run`, `history`, `show RUN`, `rollback RUN`: parse, build objects, call one function, render."""

from __future__ import annotations

import contextlib
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from safeapply.cli.ansible_opts import ansible_options
from safeapply.cli.app import AcceptNewOpt, AcceptOpt, InventoryOpt, JsonOpt, LimitOpt, PlaybookArg, YesOpt, app
from safeapply.cli.output import console, emit_json, err_console, error_line, interactive
from safeapply.errors import ExitCode, SafeapplyError, UsageError

if TYPE_CHECKING:  # the rest is imported inside the commands: `import safeapply.cli` stays cheap
    from contextlib import AbstractContextManager

    from safeapply.apply import TaskEvent
    from safeapply.records import RunRecord

TagsOpt = Annotated[list[str] | None, typer.Option(
    "--tags", "-t", help="As for ansible-playbook: only tasks with these tags (comma list, repeatable).")]
SkipTagsOpt = Annotated[list[str] | None, typer.Option(
    "--skip-tags", help="As for ansible-playbook: leave out tasks with these tags (comma list, repeatable).")]
StartAtOpt = Annotated[str | None, typer.Option(
    "--start-at-task", help="As for ansible-playbook: start at the first task matching this name.")]
AllowRealOpt = Annotated[bool, typer.Option(
    "--allow-check-mode-false", help="With plan --check / run --plan-check: let tasks marked `check_mode: false` "
    "run for real during the check run (Ansible runs them even in check mode). Without it the check run stops "
    "before such a task and the plan blocks (exit 17), naming it.")]
AnsibleArgs = Annotated[list[str] | None, typer.Argument(
    help="After `--`: handed to ansible-playbook verbatim (e.g. `-- --flush-cache`).", show_default=False)]

_MARK = {"ok": "ok", "changed": "changed", "failed": "FAILED", "unreachable": "UNREACHABLE",
         "skipped": "skipped", "ignored": "failed (ignored)"}
_STYLE = {"changed": "yellow", "failed": "bold red", "unreachable": "bold red", "ok": "green"}


class _Reporter:
    """Live per-host task lines: rich on a TTY, plain lines otherwise (both on stderr with --json)."""

    def __init__(self, quiet_stdout: bool) -> None:
        self.out = err_console if quiet_stdout else console
        self.tty = sys.stderr.isatty() if quiet_stdout else sys.stdout.isatty()

    def stage(self, name: str, detail: str = "") -> None:
        text = f"== {name}{': ' + detail if detail else ''}"
        self.out.print(f"[bold]{text}[/bold]" if self.tty else text, markup=self.tty)

    def task(self, ev: TaskEvent) -> None:
        """A task's result line; under it what a failure said and what a change changed (--diff, --check).
        `output` (with -v) is Ansible's own text, redacted, as it streams."""
        if ev.status == "started":
            return
        if ev.status == "output":
            self.out.print(ev.message.rstrip("\n"), markup=False, highlight=False)
            return
        from rich.markup import escape

        label = _MARK.get(ev.status, ev.status)
        item, msg = f" (item {ev.item})" if ev.item else "", f" - {ev.message}" if ev.message else ""
        text = f"{ev.host}  {ev.task}{item}{msg}"
        if self.tty:
            style = _STYLE.get(ev.status, "dim")
            self.out.print(f"  [{style}]{label:>11}[/{style}]  {escape(text)}", markup=True, highlight=False)
        else:
            self.out.print(f"  {label:>11}  {text}", markup=False, highlight=False)
        for more in (ev.detail, ev.diff):
            if more:
                self.out.print(textwrap.indent(more, " " * 15), markup=False, highlight=False)

    def recap(self, rec: dict[str, Any]) -> None:
        """PLAY RECAP, per host: Ansible's counts and whether safeapply rolled the host back."""
        for line in recap_lines(rec):
            self.out.print(line, markup=False, highlight=False)


def recap_lines(rec: dict[str, Any]) -> list[str]:
    hosts = (rec.get("apply") or {}).get("hosts") or {}
    rolled = rec.get("rollback") or {}
    if not hosts:
        return []
    width = max(len(h) for h in hosts)
    out = ["PLAY RECAP"]
    for host, s in sorted(hosts.items()):
        back = (rolled.get(host) or {}).get("outcome", "no") if host in rolled else "no"
        out.append(f"  {host:<{width}}  ok={s.get('ok', 0):<4} changed={s.get('changed', 0):<4} "
                   f"failed={s.get('failed', 0):<4} unreachable={s.get('unreachable', 0):<4} "
                   f"skipped={s.get('skipped', 0):<4} rolled back={back}")
        out += [f"  {host:<{width}}  left as it is: {c.get('engine')} container {c.get('name')} ({c.get('why')})"
                for c in (rolled.get(host) or {}).get("containers_left") or []]
    return out


def _confirm(yes: bool) -> Callable[[list[str]], bool]:
    def ask(warnings: list[str]) -> bool:
        if yes:
            return True
        for w in warnings:
            err_console.print(f"warning: {w}", markup=False)
        if not interactive():
            return False  # no prompt without a TTY: --yes is the only way on
        return typer.confirm("Apply despite these warnings?", default=False)

    return ask


@app.command()
@ansible_options
def run(
    playbook: PlaybookArg,
    inventory: InventoryOpt = None,
    limit: LimitOpt = None,
    extra_vars: Annotated[list[str] | None, typer.Option(
        "--extra-vars", "-e", help="As for ansible-playbook: key=value, JSON or @file. Repeatable.")] = None,
    check: Annotated[bool, typer.Option("--check", "-C", help="Ansible check mode with diff; change nothing.")]
    = False,
    tags: TagsOpt = None,
    skip_tags: SkipTagsOpt = None,
    start_at_task: StartAtOpt = None,
    diff: Annotated[bool, typer.Option(
        "--diff", "-D", help="As for ansible-playbook: show what each changed task changed (secrets masked).")]
    = False,
    verbose: Annotated[int, typer.Option(
        "--verbose", "-v", count=True, help="-v ... -vvvv: stream Ansible's own output (redacted), as verbose.")] = 0,
    yes: YesOpt = False,
    accept_new: AcceptNewOpt = False,
    settle: Annotated[float, typer.Option(
        "--settle", envvar="SAFEAPPLY_SETTLE", min=0,
        help="Seconds to watch units for restart loops after apply; also how long after apply SSH is checked "
        "when the playbook touches sshd, firewall, network or sudo settings, or leaves an async task.")] = 3.0,
    rollback_packages: Annotated[bool, typer.Option(
        "--rollback-packages", help="Also revert package installs/upgrades (apt history) on rollback.")] = False,
    strict_lint: Annotated[bool, typer.Option(
        "--strict-lint", envvar="SAFEAPPLY_STRICT_LINT",
        help="A part of lint that could not run (ansible-lint rejected the project's config, the syntax check "
        "could not start) stops the run (exit 16) instead of warning.")] = False,
    strict_plan: Annotated[bool, typer.Option(
        "--strict-plan", envvar="SAFEAPPLY_STRICT_PLAN",
        help="A task the plan could not analyse that may start, install or publish a listener stops the run "
        "(exit 17) instead of warning.")] = False,
    plan_check: Annotated[bool, typer.Option(
        "--plan-check", help="Plan from Ansible's own check mode, as `safeapply plan --check` (costs a check run, "
        "about as long as the play, before the apply).")] = False,
    allow_check_mode_false: AllowRealOpt = False,
    root: Annotated[list[str] | None, typer.Option(
        "--root", help="Snapshot root (default /etc). Repeatable.")] = None,
    prompt_file: Annotated[Path | None, typer.Option(
        "--prompt-file", help="The prompt that produced the playbook (kept in the run record).")] = None,
    model: Annotated[str | None, typer.Option("--model", help="The model that wrote the playbook.")] = None,
    note: Annotated[str | None, typer.Option("--note", help="A free note for the run record.")] = None,
    metrics_dir: Annotated[Path | None, typer.Option(
        "--metrics-dir", envvar="SAFEAPPLY_METRICS_DIR",
        help="Write node_exporter textfile metrics here (last status, duration, rollbacks).")] = None,
    notify_url: Annotated[str | None, typer.Option(
        "--notify", envvar="SAFEAPPLY_NOTIFY",
        help="POST the run id and status here on rollback or failure (nothing else: see --notify-details).")] = None,
    notify_details: Annotated[bool, typer.Option(
        "--notify-details", envvar="SAFEAPPLY_NOTIFY_DETAILS",
        help="Also send the playbook's name, the hosts and the outcome message (secrets redacted) to --notify.")]
    = False,
    deadman_deadline: Annotated[float, typer.Option(
        "--deadman-deadline", envvar="SAFEAPPLY_DEADMAN_DEADLINE", min=0,
        help="Seconds after the controller last reached a host before that host restores its pre-run snapshot "
        "by itself (the dead-man's switch, armed before apply, disarmed after verification). 0 turns it off."
    )] = 300.0,
    speedups: Annotated[bool, typer.Option(
        "--speedups/--no-speedups", envvar="SAFEAPPLY_SPEEDUPS",
        help="Make Ansible's part faster than its defaults: SSH pipelining (off by itself when a host's sudo needs "
        "a tty) and the run's own multiplexed SSH connection per host, closed when it ends. --no-speedups: "
        "Ansible's own defaults.")] = True,
    accept: AcceptOpt = None,
    json_out: JsonOpt = False,
    ansible_args: AnsibleArgs = None,
) -> int:
    """Lint, scan, plan, snapshot, apply, verify — and roll back automatically if anything fails.

    `-t/--tags`, `--skip-tags`, `--start-at-task`, `-C/--check`, `-D/--diff`, `-v...` are ansible-playbook's own;
    anything after `--` is handed to ansible-playbook verbatim. The plan considers only the tasks they select.

    Exit codes: 0 applied and verified, 6 nothing to change, 10-18 stopped before any change,
    20 rolled back (host restored), 21 rollback failed (a person must look). See `safeapply exit-codes`."""
    from safeapply import metrics, notify
    from safeapply.intent.select import parse
    from safeapply.run import Pipeline
    from safeapply.run_options import RunOptions
    from safeapply.snapshot.roots import canonical_roots

    if notify_url:
        notify.check_url(notify_url)
    if not playbook.exists():
        raise UsageError(f"playbook {playbook} not found", "give the path of a playbook file")
    if not playbook.is_file():
        raise UsageError(f"playbook {playbook} is not a file", "give the path of a playbook file")
    if metrics_dir is not None:
        metrics.check_dir(metrics_dir)
    parse(tags or [], skip_tags or [], start_at_task, ansible_args or [])  # ansible-playbook would refuse: now
    from safeapply.inventory import _check_sources  # a usage error is never recorded as a run
    from safeapply.run_stages import extra_var_names

    _check_sources(list(inventory or []))
    extra_var_names(list(extra_vars or []))  # a bad -e (missing @file, bad JSON) is a usage error too
    opts = RunOptions(
        playbook=playbook, inventory=list(inventory or []), limit=limit, extra_vars=list(extra_vars or []),
        check=check, tags=list(tags or []), skip_tags=list(skip_tags or []), start_at_task=start_at_task, diff=diff,
        verbosity=verbose, ansible_args=list(ansible_args or []),
        yes=yes, accept_new_host_keys=accept_new, settle=settle, rollback_packages=rollback_packages,
        strict_lint=strict_lint, strict_plan=strict_plan, plan_check=plan_check,
        allow_check_mode_false=allow_check_mode_false,
        roots=canonical_roots(root or ["/etc"]), prompt_file=prompt_file, model=model, note=note,
        deadman_deadline=deadman_deadline, metrics_dir=metrics_dir, notify_url=notify_url,
        notify_details=notify_details, accept=list(accept or []), speedups=speedups)
    reporter = _Reporter(json_out)
    pipeline = Pipeline(opts, reporter, _confirm(yes), progress=lambda m: err_console.print(m, markup=False))
    outcome = pipeline.run()
    reporter.recap(outcome.record.to_dict())
    line = f"run {outcome.record.id}: {outcome.message} (exit {outcome.exit_code})"
    if json_out:
        emit_json("run", outcome.record.to_dict())
    ok = outcome.exit_code in (ExitCode.OK, ExitCode.NOTHING_TO_CHANGE)
    if not ok:
        error_line(outcome.message)
    if outcome.recorded and not (json_out and ok):  # with --json a failure still gets its summary on stderr
        (console if ok else err_console).print(line, markup=False)
    return outcome.exit_code


@app.command()
def history(
    limit: Annotated[int, typer.Option("--last", "-n", help="How many runs to list.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """List recent runs, newest first."""
    from safeapply.records import RunStore

    runs = RunStore().list(limit)
    if json_out:
        emit_json("history", {"runs": [_brief(r) for r in runs]})
        return
    for r in runs:
        b = _brief(r)
        hosts = ",".join(r.sections.get("hosts") or []) or "-"
        console.print(f"{b['id']}  {b['started']}  {b['status']!s:<15} exit {b['exit_code']!s:<4} "
                      f"{hosts}  {b['playbook']}", markup=False)


def _brief(r: RunRecord) -> dict[str, object]:
    return {"id": r.id, "started": r.started, "status": r.status, "exit_code": r.exit_code,
            "hosts": r.sections.get("hosts") or [], "playbook": r.playbook, "user": r.user}


@app.command()
def show(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix, or 'last').")],
         log: Annotated[bool, typer.Option(
             "--log", help="Print the run's full Ansible output instead (kept redacted, 0600, in the state dir).")]
         = False,
         json_out: JsonOpt = False) -> None:
    """Everything recorded about one run: who, what, lint, plan, snapshots, apply, verify, rollback.

    Of a run whose controller died mid-run, its hosts are first asked what their dead-man's switch did, read as
    the run read them (its inventory, directory and ansible.cfg, as `safeapply deadman RUN`)."""
    from safeapply.records import RunStore

    store = RunStore()
    record = store.get(run_id)
    if log:
        _print_log(record)
        return
    if record.finished is None:  # the controller died mid-run: ask the hosts what their switch did
        from safeapply.cli.deadman import warn
        from safeapply.deadman.story import host_connector, refresh
        from safeapply.run_config import asking

        with contextlib.suppress(SafeapplyError), asking(record, warn):  # the run's directory and ansible.cfg
            refresh(record, store, host_connector(record))
    rec = record.to_dict()
    if json_out:
        emit_json("show", rec)
        return
    for key in ("id", "status", "exit_code", "started", "finished", "user", "controller", "playbook",
                "playbook_sha256", "limit", "check_mode", "hosts", "timings"):
        console.print(f"{key:>16}: {rec.get(key)}", markup=False)
    console.print(f"{'message':>16}: {(rec.get('notes') or {}).get('message', '')}", markup=False)
    _show_details(rec)


def _print_log(record: RunRecord) -> None:
    from safeapply.apply import run_log

    path = Path(str((record.sections.get("apply") or {}).get("log") or run_log(record.id)))
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        raise UsageError(f"run {record.id} has no Ansible log", "the run stopped before ansible-playbook ran") \
            from None
    except OSError as e:
        raise UsageError(f"cannot read the log of run {record.id} ({path}): {e.strerror}") from e
    sys.stdout.write(text)


def _show_details(rec: dict[str, object]) -> None:
    apply = rec.get("apply") or {}
    if isinstance(apply, dict):
        console.print(f"{'apply':>16}: {apply.get('status')} (failed {apply.get('failed_hosts')}, "
                      f"unreachable {apply.get('unreachable_hosts')})", markup=False)
        for f in apply.get("failures") or []:
            item = f" (item {f.get('item')})" if f.get("item") else ""
            console.print(f"{'failed':>16}: {f.get('host')}: {f.get('task')}{item}", markup=False, highlight=False)
            if f.get("detail"):
                console.print(textwrap.indent(str(f["detail"]), " " * 18), markup=False, highlight=False)
        for line in recap_lines(rec):
            console.print(line, markup=False, highlight=False)
    for section in ("verify", "rollback"):
        value = rec.get(section)
        if isinstance(value, dict):
            for host, rep in value.items():
                line = rep.get("outcome") or ("ok" if rep.get("ok") else "FAILED")
                console.print(f"{section:>16}: {host}: {line}", markup=False)
                for item in [f.get("message") for f in rep.get("findings", [])] + rep.get("differences", []):
                    console.print(f"{'':>18}- {item}", markup=False)


def _run_config(kwargs: dict[str, Any]) -> AbstractContextManager[object]:
    """`rollback RUN` reads the project from the run's directory, with the run's ansible.cfg."""
    from safeapply.records import RunStore
    from safeapply.run_config import pinned

    return pinned(RunStore().get(kwargs["run_id"]), kwargs["force"])


@app.command("rollback")
@ansible_options(before=_run_config)
def rollback_cmd(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix, or 'last').")],
    yes: YesOpt = False,
    accept_new: AcceptNewOpt = False,
    rollback_packages: Annotated[bool, typer.Option("--rollback-packages")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Roll back even when the snapshot is older than --max-age or later runs changed the "
        "hosts since (unattended; at a terminal you are asked instead, with what will be undone).")] = False,
    max_age: Annotated[float, typer.Option(
        "--max-age", envvar="SAFEAPPLY_ROLLBACK_MAX_AGE", min=0,
        help="Seconds after which a run's snapshot counts as old (asks, or needs --force).")] = 86400.0,
    deadman_deadline: Annotated[float, typer.Option(
        "--deadman-deadline", envvar="SAFEAPPLY_DEADMAN_DEADLINE", min=0,
        help="The dead-man's switch armed around the rollback (0 turns it off).")] = 300.0,
    json_out: JsonOpt = False,
) -> int:
    """Return a past run's hosts to their pre-run snapshot (asks first; needs --yes without a TTY).

    Reads the project as the run did, from any directory: the run's inventory, in the run's directory with the
    run's ansible.cfg; refused (exit 2, unless --force) when that ansible.cfg is gone or changed since the run.
    Refuses a host whose machine-id is not the snapshotted one (the inventory now names another machine);
    asks (or needs --force) when the snapshot is older than --max-age or later runs changed the host. Each host
    is rolled back under its lock with the dead-man's switch armed around it. Exit 0 restored, 21 not."""
    from safeapply.records import RunStore
    from safeapply.rollback_run import rollback_run

    store = RunStore()
    rec = store.get(run_id)
    if not yes and (not interactive() or not typer.confirm(
            f"Restore {', '.join(rec.sections.get('snapshots') or {})} to before run {rec.id}?")):
        raise UsageError("rollback not confirmed", "re-run with --yes")
    reports = rollback_run(rec, store, accept_new=accept_new, rollback_packages=rollback_packages, force=force,
                           max_age=max_age, deadline=deadman_deadline, ask=_ask_again)
    ok = all(r.restored for r in reports)
    if json_out:
        emit_json("rollback", {"hosts": [r.to_dict() for r in reports]})
    else:
        for r in reports:
            console.print(f"{r.host}: {r.outcome}", markup=False)
            for line in r.errors + r.differences:
                console.print(f"  - {line}", markup=False)
    return ExitCode.OK if ok else ExitCode.ROLLBACK_FAILED


def _ask_again(lines: list[str]) -> bool:
    for line in lines:
        err_console.print(f"warning: {line}", markup=False)
    return interactive() and typer.confirm("Roll back anyway?", default=False)
