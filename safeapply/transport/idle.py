"""The inactivity limit of the commands run in this context (thread): no byte either way for this many seconds
ends the command (UnreachableError). Unlike a total timeout it suits a call whose length grows with /etc (a
snapshot, a restore): a hung host ends the call, a big one does not. The SSH transport's read loop applies it."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from safeapply.errors import UnreachableError

_IDLE: contextvars.ContextVar[float | None] = contextvars.ContextVar("safeapply_idle", default=None)


@contextlib.contextmanager
def idle_limit(seconds: float | None) -> Iterator[None]:
    """Commands run inside end once the host sends and reads nothing for `seconds` (None or 0: no limit)."""
    token = _IDLE.set(seconds or None)
    try:
        yield
    finally:
        _IDLE.reset(token)


def current() -> float | None:
    return _IDLE.get()


class Stalled(UnreachableError):
    """A command ended by its inactivity limit (exit 10, as an unreachable host)."""
