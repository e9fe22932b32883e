"""`safeapply deadman RUN`: what each host's dead-man's switch did for a run (and record it); with
`--release`, disarm a run's switch that is still armed (a killed controller, a release that failed), so that it
cannot restore on top of a later run; `--host H -i INV` asks (or releases on) one host, also for a run this
controller has no record of."""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from typing import Annotated, Any

import typer

from safeapply.cli.ansible_opts import ansible_options
from safeapply.cli.app import AcceptNewOpt, InventoryOpt, JsonOpt, app
from safeapply.cli.output import console, emit_json, err_console
from safeapply.deadman.story import Connect, armed_hosts, host_connector, refresh
from safeapply.errors import ExitCode, SafeapplyError, UsageError
from safeapply.records import RunRecord, RunStore
from safeapply.transport.base import Transport


def warn(line: str) -> None:
    err_console.print(f"warning: {line}", markup=False)


def _run_config(kwargs: dict[str, Any]) -> AbstractContextManager[object]:
    """The run's hosts are read as the run read them: its directory, its ansible.cfg (`run_config.asking`).
    `--host H -i INV` names its host and inventory here: this directory's ansible.cfg then."""
    from safeapply.run_config import asking

    if kwargs.get("host") is not None:
        return contextlib.nullcontext()
    return asking(RunStore().get(kwargs["run_id"]), warn)


@app.command()
@ansible_options(before=_run_config)
def deadman(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix, or 'last').")],
    release: Annotated[bool, typer.Option(
        "--release", help="Disarm the run's switches still armed (once the hosts are as they should be).")] = False,
    host: Annotated[str | None, typer.Option(
        "--host", help="Only this host (from -i): also for a run with no record on this controller.")] = None,
    inventory: InventoryOpt = None,
    accept_new: AcceptNewOpt = False,
    json_out: JsonOpt = False,
) -> int:
    """Ask each host of a run whether its dead-man's switch fired, what it restored and restarted, and
    record that in the run record — the end of the story of a run whose controller was killed or shut out.

    The run's hosts are read as the run read them, from any directory: its recorded inventory, in its directory
    with its ansible.cfg (one gone or changed since the run: a warning, and what is there now is used). With
    --host H -i INV, this directory's ansible.cfg.

    Exit codes: 0 every switch disarmed or none armed, 20 hosts restored themselves, 21 a restore failed
    or a host cannot be asked, 22 a switch is still armed (it fires at its deadline)."""
    store = RunStore()
    if release or host is not None:
        return _direct(store, run_id, release, host, inventory, accept_new, json_out)
    rec = store.get(run_id)
    entries = refresh(rec, store, host_connector(rec, accept_new))
    if json_out:
        emit_json("deadman", {"run": rec.id, "status": rec.status, "exit_code": rec.exit_code, "hosts": entries})
    else:
        for host, e in sorted(entries.items()):
            armed = e.get("armed") or {}
            console.print(f"{host}: {e.get('outcome')} (deadline {armed.get('deadline')})", markup=False)
            if e.get("message"):
                console.print(f"  {e['message']}", markup=False)
            for step in (e.get("fired") or {}).get("steps", []):
                console.print(f"  - {step.get('step')}: {' '.join(step.get('argv') or [])} -> rc {step.get('rc')}",
                              markup=False)
    outcomes = {e.get("outcome") for e in entries.values()}
    if outcomes & {"rollback-failed", "unreachable"}:
        return ExitCode.ROLLBACK_FAILED
    if "restored" in outcomes:
        return ExitCode.ROLLED_BACK
    if outcomes & {"still-armed", "armed"}:
        return ExitCode.SWITCH_ARMED
    return ExitCode.OK


def _direct(store: RunStore, run_id: str, release: bool, host: str | None, inventory: list[str] | None,
            accept_new: bool, json_out: bool) -> int:
    """Ask (or, with `release`, disarm) each host's switch of the run: the run's armed hosts from its record,
    or the one `host` from the inventory."""
    from safeapply.deadman.switch import disarm, status

    rec: RunRecord | None
    try:
        rec = store.get(run_id)
    except UsageError:
        if host is None:
            raise
        rec = None
    rid = rec.id if rec is not None else run_id
    if host is not None:
        from safeapply.inventory import resolve_hosts

        hosts = [host]

        def connect_one(name: str) -> Transport:
            return resolve_hosts(inventory, name)[0].connect(accept_new)
        connect: Connect = connect_one
    else:
        assert rec is not None
        hosts, connect = sorted(armed_hosts(rec)), host_connector(rec, accept_new)
    out: dict[str, dict[str, object]] = {}
    for name in hosts:
        try:
            with connect(name) as t:
                if release:
                    fired = disarm(t, rid)
                    out[name] = {"outcome": "released" if fired is None else "fired", "fired": fired}
                else:
                    st = status(t, rid)
                    fired = st.get("fired")
                    out[name] = {"outcome": "fired" if fired else "still-armed" if st.get("armed") else "not-armed",
                                 "fired": fired}
        except SafeapplyError as e:
            out[name] = {"outcome": "unreachable", "message": str(e)}
    if release and rec is not None:
        entries = armed_hosts(rec)
        for name, r in out.items():
            if r["outcome"] == "released" and name in entries:
                entries[name].update(outcome="disarmed", message=f"{name}: released by `safeapply deadman --release`")
        store.save(rec)
    if json_out:
        emit_json("deadman", {"run": rid, "hosts": out})
    else:
        for name, r in sorted(out.items()):
            console.print(f"{name}: run {rid}: {r['outcome']}" + (f" ({r['message']})" if r.get("message") else ""),
                          markup=False)
    outcomes = {str(r["outcome"]) for r in out.values()}
    if "unreachable" in outcomes:
        return ExitCode.ROLLBACK_FAILED
    if "still-armed" in outcomes:
        return ExitCode.SWITCH_ARMED
    return ExitCode.OK
