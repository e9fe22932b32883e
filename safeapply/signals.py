"""Signals, in one place: how SIGTERM/SIGHUP become exceptions, how a run cancels ansible-playbook, and how a
rollback holds Ctrl-C/SIGTERM until it is done and then delivers them.

    raise_on_terminate()   SIGTERM/SIGHUP -> `Terminated` in the main thread (installed by the CLI funnel)
    noted(fn)              while ansible-playbook runs: SIGINT/SIGTERM call fn(signum) (it cancels the run)
    deferred()             while a rollback runs: SIGINT/SIGTERM/SIGHUP are held, then delivered on exit
                           (KeyboardInterrupt for SIGINT, `Terminated` for the others)

Outside the main thread the context managers do nothing: Python delivers signals to the main thread only.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from safeapply.errors import Terminated

HELD = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_terminated(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(signum)


def raise_on_terminate() -> None:
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _raise_terminated)


def deliver(signum: int) -> None:
    """Raise what the signal means to safeapply: Ctrl-C, or termination."""
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


@contextmanager
def _swapped(signums: tuple[int, ...], handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def noted(fn: Callable[[int], None]) -> Iterator[None]:
    """SIGINT/SIGTERM call `fn(signum)` instead of interrupting (ansible-runner then cancels cleanly)."""
    with _swapped((signal.SIGINT, signal.SIGTERM), lambda n, _f: fn(n)):
        yield


@contextmanager
def deferred() -> Iterator[list[int]]:
    """Hold SIGINT/SIGTERM/SIGHUP until the block ends, then deliver the first one held. (If the block itself
    raises, its exception goes on.)"""
    got: list[int] = []
    with _swapped(HELD, lambda n, _f: got.append(n)):
        yield got
    if got:
        deliver(got[0])
