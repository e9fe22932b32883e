"""Record, during `safeapply plan --check`, what Ansible's own check mode resolved for every task it ran.

Active only when SAFEAPPLY_CHECK_RECORD names a file (safeapply sets it for the check run only). One JSON line
per task result, per host, in the order Ansible produced them: the task's arguments as Ansible templated them
for that host (its `task_fields`: includes, facts, loops and variable precedence all Ansible's), a template's
or copy's rendered content (`diff.after`, the run has --diff), the skip reason, and what the plan needs to
know about the task (handler, notify, listen, file:line).

And a guard: in check mode Ansible still runs a task whose `check_mode` is false (or a template) for real. Unless
SAFEAPPLY_CHECK_ALLOW_REAL is 1, such a task stops ansible-playbook before it is queued to any host
(`v2_playbook_on_task_start` is called synchronously by the strategy before it queues the task), after a
`refused` line naming it. Without SAFEAPPLY_CHECK_RECORD this plugin does nothing.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible.plugins.callback import CallbackBase

_STOPPED = 3  # ansible-playbook's exit when the guard stops it (the caller reads the `refused` line)


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "safeapply_check"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._path = os.environ.get("SAFEAPPLY_CHECK_RECORD", "")
        self._allow_real = os.environ.get("SAFEAPPLY_CHECK_ALLOW_REAL") == "1"
        self._play = ""
        if not self._path:
            self.disabled = True

    def _write(self, line: dict[str, Any]) -> None:
        """Append one line (0600: templated arguments may hold secrets; the caller deletes the file)."""
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, default=str, sort_keys=True) + "\n")

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._play = str(play.get_name() or "")

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._guard(task)

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._guard(task)

    def _guard(self, task: Any) -> None:
        if task.check_mode is True or task.action.rsplit(".", 1)[-1] == "meta":
            return
        line = {"event": "real" if self._allow_real else "refused", "check_mode": str(task.check_mode),
                **_task(task, self._play)}
        self._write(line)
        if not self._allow_real:
            os._exit(_STOPPED)  # before the task is queued: it runs on no host

    def _result(self, result: Any, status: str, item: bool = False, ignore_errors: bool = False) -> None:
        res = result._result if isinstance(result._result, dict) else {}
        if status == "ok" and res.get("changed"):
            status = "changed"
        args = {k: v for k, v in dict(result.task_fields.get("args") or {}).items() if not k.startswith("_ansible_")}
        line = {"event": "result", "host": result.host.get_name(), "status": status, "item": item,
                "loop": "results" in res and not item, "args": args, "content": _content(res),
                "why": str(res.get("skip_reason") or res.get("msg") or "")[:300], "ignore_errors": ignore_errors,
                **_task(result.task, self._play)}
        self._write(line)

    def v2_runner_on_ok(self, result: Any) -> None:
        self._result(result, "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._result(result, "failed", ignore_errors=ignore_errors)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._result(result, "unreachable")

    def v2_runner_item_on_ok(self, result: Any) -> None:
        self._result(result, "ok", item=True)

    def v2_runner_item_on_failed(self, result: Any) -> None:
        self._result(result, "failed", item=True)

    def v2_runner_item_on_skipped(self, result: Any) -> None:
        self._result(result, "skipped", item=True)


def _task(task: Any, play: str) -> dict[str, Any]:
    role = getattr(task, "_role", None)
    return {"name": task.get_name(), "raw_name": str(task.name or ""), "action": task.action,
            "path": task.get_path() or "", "play": play,
            "handler": type(task).__name__ == "Handler", "notify": _names(task.notify),
            "listen": _names(getattr(task, "listen", None)), "role_path": getattr(role, "_role_path", "") or "",
            "async": int(getattr(task, "async_val", 0) or 0), "poll": getattr(task, "poll", None)}


def _names(value: Any) -> list[str]:
    if not value:
        return []
    return [str(value)] if isinstance(value, str) else [str(v) for v in value]


def _content(res: dict[str, Any]) -> str | None:
    """The rendered content of a file the task would write (template, copy): its diff's last text `after`."""
    diffs = res.get("diff")
    for d in reversed(diffs if isinstance(diffs, list) else [diffs]):
        if isinstance(d, dict) and isinstance(d.get("after"), str) and "after_header" in d:
            return str(d["after"])
    return None
