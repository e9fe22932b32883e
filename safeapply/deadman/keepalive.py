"""Keeps an armed switch from firing while apply runs: its deadline is pushed forward every deadline/3 seconds
over the pipeline's open connection. When the controller dies or is shut out, the pushes stop and the host
restores itself `deadline_s` after the last one."""

from __future__ import annotations

import threading

from safeapply.deadman.switch import Armed, extend
from safeapply.errors import SafeapplyError
from safeapply.transport.base import Transport


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
