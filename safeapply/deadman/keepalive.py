"""Keeps an armed switch from firing while apply runs: its count is restarted every deadline/3 seconds over the
pipeline's open connection. A failed push is retried every few seconds for as long as the host's deadline has
not passed (a dropped channel, a busy host); when the controller dies or stays shut out, the pushes stop and
the host restores itself `deadline_s` after the last one that reached it."""

from __future__ import annotations

import threading
import time

from safeapply.deadman.switch import Armed, extend
from safeapply.errors import SafeapplyError
from safeapply.transport.base import Transport

RETRY_S = 3.0


class Keepalive:
    """Pushes the deadline forward every deadline/3 seconds over the pipeline's open connection while apply
    runs, so a long playbook is never cut short; a push that fails is retried until the host's deadline
    (`Armed.due`); after that the host has fired (or will), and the keepalive stops."""

    def __init__(self, transport: Transport, armed: Armed) -> None:
        self.transport, self.armed = transport, armed
        self.failures: list[str] = []  # why pushes failed (each retried), for the record
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"deadman-{armed.host}")
        self._thread.start()

    def _loop(self) -> None:
        wait = self.armed.deadline_s / 3
        while not self._stop.wait(wait):
            try:
                with self._lock:
                    if not self._stop.is_set():
                        self.armed = extend(self.transport, self.armed)
                wait = self.armed.deadline_s / 3
            except (SafeapplyError, OSError) as e:
                self.failures.append(str(e))
                if time.monotonic() + RETRY_S >= self.armed.due():
                    return  # past the host's deadline: it has fired (or is firing); nothing to keep alive
                wait = RETRY_S

    def stop(self) -> Armed:
        self._stop.set()
        with self._lock:
            return self.armed
