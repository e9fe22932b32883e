"""The rest of a run's story after the controller lost it: ask each host what its dead-man's switch did and
put that in the run record (for `safeapply deadman RUN`, and for `show` of a run whose controller was killed,
whose record still says "running")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from safeapply.deadman.switch import status
from safeapply.errors import ExitCode, HostKeyError, SafeapplyError
from safeapply.records import RunRecord, RunStore
from safeapply.transport.base import Transport

Connect = Callable[[str], Transport]


def armed_hosts(rec: RunRecord) -> dict[str, dict[str, Any]]:
    """host -> the `deadman` entry the guard kept in the record (hosts the switch was armed on)."""
    snaps = rec.sections.get("snapshots") or {}
    return {h: s["deadman"] for h, s in snaps.items() if isinstance(s, dict) and s.get("deadman")}


def host_connector(rec: RunRecord, accept_new_host_keys: bool = False) -> Connect:
    from safeapply.inventory import resolve_hosts

    def connect(name: str) -> Transport:
        return resolve_hosts(list(rec.sections.get("inventory") or []), name)[0].connect(accept_new_host_keys)

    return connect


def refresh(rec: RunRecord, store: RunStore, connect: Connect) -> dict[str, dict[str, Any]]:
    """For each armed host not yet settled by the controller, read its switch's state (fired record or
    still armed) into the record. A run the controller never finished whose hosts all restored themselves
    becomes `rolled-back` (exit 20); one with a host that restored itself with errors, `rollback-failed`."""
    entries = armed_hosts(rec)
    for host, entry in entries.items():
        if entry.get("outcome") not in ("armed", "still-armed", "unreachable"):
            continue
        try:
            with connect(host) as t:
                st = status(t, rec.id)
        except HostKeyError:
            raise
        except SafeapplyError as e:
            entry.update(outcome="unreachable", message=f"{host}: cannot ask the host: {e.message}")
            continue
        fired = st.get("fired")
        if fired is None:
            entry.update(outcome="still-armed" if st.get("armed") else "disarmed")
        else:
            ok = bool(fired.get("ok"))
            entry.update(outcome="restored" if ok else "rollback-failed", fired=fired,
                         message=f"{host}: restored itself at {fired.get('fired_at')} (dead-man's switch)"
                         + ("" if ok else ", with failed steps"))
    if rec.finished is None and entries and all(e.get("outcome") in ("restored", "rollback-failed")
                                                for e in entries.values()):
        failed = any(e["outcome"] == "rollback-failed" for e in entries.values())
        code = ExitCode.ROLLBACK_FAILED if failed else ExitCode.ROLLED_BACK
        rec.exit_code, rec.status = int(code), code.status
        rec.sections["notes"] = {"message": "the controller stopped mid-run; every host restored itself "
                                 "(dead-man's switch)" + (" with errors" if failed else "")}
        rec.sections["hosts"] = sorted(entries)
    store.save(rec)
    return entries
