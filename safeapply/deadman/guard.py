"""The dead-man's switch as a `safeapply.run.Guard`: armed on each host right after its snapshot (before
apply), kept alive while apply runs, confirmed (disarmed over the connection verification opened after
apply, else a new one) after verification, or released when the run stops before apply.

Wiring (the CLI): `guard = DeadmanGuard(deadline_s)`, `Pipeline(..., guards=[guard])`, then
`guard.bind(pipeline.rec, store)` before `pipeline.run()`. What it armed and what came of it is kept in the
run record under `snapshots.<host>.deadman` (saved at arm time, so a killed controller leaves it behind).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from safeapply.deadman.confirm import DEFAULT_MARGIN, Outcome, confirm_or_wait
from safeapply.deadman.switch import DEFAULT_DEADLINE, Armed, arm, disarm, extend
from safeapply.errors import SafeapplyError, UsageError
from safeapply.transport.base import Transport

if TYPE_CHECKING:
    from safeapply.records import RunRecord, RunStore
    from safeapply.run import HostRun

ENV_DEADLINE = "SAFEAPPLY_DEADMAN_DEADLINE"


def deadline_from_env(default: float = DEFAULT_DEADLINE) -> float:
    """$SAFEAPPLY_DEADMAN_DEADLINE seconds (0 turns the switch off)."""
    raw = os.environ.get(ENV_DEADLINE)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as e:
        raise UsageError(f"{ENV_DEADLINE}={raw!r} is not a number of seconds") from e


@dataclass
class _Connector:
    """Adapts the pipeline's `fresh()` (a connection opened after apply, checked) to `confirm_or_wait`."""

    name: str
    fn: Callable[[], Transport]

    def connect(self, accept_new_host_keys: bool = False) -> Transport:
        return self.fn()


class Keepalive:
    """Pushes the deadline forward every deadline/3 seconds over the pipeline's open connection while apply
    runs, so a long playbook is never cut short; when the controller dies or is shut out, it stops and the
    host restores itself `deadline_s` after the last push."""

    def __init__(self, transport: Transport, armed: Armed) -> None:
        self.transport, self.armed = transport, armed
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"deadman-{armed.host}")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.armed.deadline_s / 3):
            try:
                with self._lock:
                    if not self._stop.is_set():
                        self.armed = extend(self.transport, self.armed)
            except (SafeapplyError, OSError):
                return  # shut out or gone: the switch keeps the last deadline

    def stop(self) -> Armed:
        self._stop.set()
        with self._lock:
            return self.armed


class DeadmanGuard:
    def __init__(self, deadline_s: float = DEFAULT_DEADLINE, margin_s: float = DEFAULT_MARGIN,
                 keepalive: bool = True, progress: Callable[[str], None] | None = None) -> None:
        self.deadline_s, self.margin_s, self.keepalive = deadline_s, margin_s, keepalive
        self.say = progress or (lambda _m: None)
        self.rec: RunRecord | None = None
        self.store: RunStore | None = None
        self.armed: dict[str, Keepalive | Armed] = {}
        self.outcomes: dict[str, Outcome] = {}
        self._lock = threading.Lock()

    def bind(self, rec: RunRecord, store: RunStore) -> DeadmanGuard:
        self.rec, self.store = rec, store
        return self

    # ---- Guard protocol ------------------------------------------------------------------------------
    def arm(self, hosts: list[HostRun]) -> None:
        if self.rec is None:
            raise RuntimeError("DeadmanGuard.bind(record, store) was not called")
        try:
            _each(hosts, self._arm_one)
        except BaseException:
            self.release(hosts)
            raise
        self._save()

    def confirm(self, hosts: list[HostRun]) -> None:
        _each([h for h in hosts if h.name in self.armed], self._confirm_one)
        self._save()

    def release(self, hosts: list[HostRun]) -> None:
        """The run stopped before apply (lint, plan, an error, Ctrl-C): disarm; nothing was changed."""
        try:
            _each([h for h in hosts if h.name in self.armed], self._release)
        finally:
            self._save()

    # ---- per host ------------------------------------------------------------------------------------
    def _arm_one(self, h: HostRun) -> None:
        assert h.transport is not None and self.rec is not None
        units = sorted({*h.expect.units, *(u for u in getattr(h.expect, "restarts", ()))})
        armed = arm(h.transport, self.rec.id, h.snapshot, self.deadline_s, units)
        self.say(f"{h.name}: dead-man's switch armed; restores itself at {armed.deadline} unless confirmed")
        self.armed[h.name] = Keepalive(h.transport, armed) if self.keepalive else armed
        self._note(h.name, armed=armed.to_dict(), outcome="armed")

    def _current(self, name: str) -> Armed:
        a = self.armed[name]
        return a.stop() if isinstance(a, Keepalive) else a

    def _release(self, h: HostRun) -> None:
        armed = self._current(h.name)
        del self.armed[h.name]
        try:
            if h.transport is not None:
                disarm(h.transport, armed)
            else:
                with h.connect() as t:
                    disarm(t, armed)
            self._note(h.name, outcome="released")
        except SafeapplyError as e:  # at its deadline it restores a host nothing was applied to
            self._note(h.name, outcome="release-failed", error=str(e))

    def _confirm_one(self, h: HostRun) -> None:
        armed = self._current(h.name)
        out = confirm_or_wait(_Connector(h.name, h.fresh), armed, margin_s=self.margin_s, progress=self.say)
        self.outcomes[h.name] = out
        data = {k: v for k, v in out.to_dict().items() if k not in ("host", "status")}
        self._note(h.name, armed=armed.to_dict(), outcome=out.status, **data)

    def _note(self, name: str, **data: Any) -> None:
        assert self.rec is not None
        with self._lock:
            snaps = self.rec.sections.setdefault("snapshots", {})
            entry = snaps.setdefault(name, {})
            entry["deadman"] = {**entry.get("deadman", {}), **data}
            self._save()

    def _save(self) -> None:
        if self.rec is not None and self.store is not None:
            self.store.save(self.rec)


def _each(hosts: list[HostRun], fn: Callable[[HostRun], None]) -> None:
    if not hosts:
        return
    with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
        futures = [pool.submit(fn, h) for h in hosts]
    errors = [e for f in futures if (e := f.exception()) is not None]
    if errors:
        raise errors[0]
