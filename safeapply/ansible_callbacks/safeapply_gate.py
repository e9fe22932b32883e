"""Hold a pre-started ansible-playbook at the start of the playbook until safeapply says go.

ansible-playbook spends about a second starting (imports, inventory, playbook parsing) before it touches any
host. safeapply starts it early, beside lint, scan and snapshot, and this callback holds it at
`v2_playbook_on_start` (after parsing, before the first play, so before any connection to a host) until the
file named by SAFEAPPLY_APPLY_GATE says `go` (its first line; each further `NAME=VALUE` line is set in the
environment first: `ANSIBLE_PIPELINING=False` when a host turned out to need a tty for sudo). Anything else there
(`stop`), the parent process gone, or an hour without an answer: it exits at once, before any task ran. Without
that variable it does nothing.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

_POLL = 0.01
_GIVE_UP = 3600.0


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "safeapply_gate"
    CALLBACK_NEEDS_ENABLED = False

    def v2_playbook_on_start(self, playbook: Any) -> None:
        gate = os.environ.get("SAFEAPPLY_APPLY_GATE")
        if not gate:
            return
        try:
            word, *env = _wait(gate).splitlines() or [""]
            if word == "go":
                for line in env:
                    name, _, value = line.partition("=")
                    os.environ[name] = value
                return
        except BaseException:  # the gate fails closed, whatever went wrong
            pass
        os._exit(3)  # not an exception: Ansible would log it as a warning and run the playbook


def _wait(path: str) -> str:
    parent, deadline = os.getppid(), time.monotonic() + _GIVE_UP
    while time.monotonic() < deadline and os.getppid() == parent:
        try:
            with open(path) as f:
                word = f.read().strip()  # the whole answer: written to a temporary name, then renamed
        except FileNotFoundError:
            word = ""
        if word:
            return word
        time.sleep(_POLL)
    return "stop"
