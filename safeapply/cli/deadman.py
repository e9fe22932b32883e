"""`safeapply deadman RUN`: what each host's dead-man's switch did for a run (and record it)."""

from __future__ import annotations

from typing import Annotated

import typer

from safeapply.cli.app import AcceptNewOpt, JsonOpt, app
from safeapply.cli.output import console, emit_json
from safeapply.deadman.story import host_connector, refresh
from safeapply.errors import ExitCode
from safeapply.records import RunStore


@app.command()
def deadman(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix, or 'last').")],
    accept_new: AcceptNewOpt = False,
    json_out: JsonOpt = False,
) -> int:
    """Ask each host of a run whether its dead-man's switch fired, what it restored and restarted, and
    record that in the run record — the end of the story of a run whose controller was killed or shut out.

    Exit codes: 0 every switch disarmed or none armed, 20 hosts restored themselves, 21 a restore failed
    or a host cannot be asked, 22 a switch is still armed (it fires at its deadline)."""
    store = RunStore()
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
