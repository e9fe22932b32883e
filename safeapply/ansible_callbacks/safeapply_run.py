"""Set up ansible-playbook for a safeapply run, in its own process (so with the ansible.cfg and environment it
really reads), when the callback is loaded: before the playbook starts and before any worker is forked.

The run's mark (SAFEAPPLY_RUN_MARK): Ansible's POSIX shell plugins put `SAFEAPPLY_RUN=<mark>` in front of every
module command they build (the environment string, as a task's `environment:` does; a task's own variables still
win). The variable is then in the command line of the shell that starts the module (whose descendants are the
task's processes), and in the environment of the module and of all it starts, `async` jobs included: a rollback
finds and stops what a run cut short left running (`safeapply.target.tasks`), also with SSH pipelining, where
no `ansible-tmp-*` path names the task. This changes that one method, in this process only. Each module
command first checks that the run's dead-man's switch has not fired on the host (`test ! -e
/var/lib/safeapply/deadman/<mark>/fence`, written first by `deadman.fire`): after a self-restore, Ansible's
later tasks on that host fail before they start instead of undoing the restore.

The speedups (SAFEAPPLY_ANSIBLE_SPEEDUPS=1), each only where the user left Ansible's default (ansible.cfg, environment;
inventory variables such as `ansible_pipelining` win anyway): SSH pipelining on; the SSH control connections
(Ansible's default ssh_args: ControlMaster=auto, ControlPersist) kept in the run's own directory
(SAFEAPPLY_SSH_CONTROL_DIR), which safeapply closes when the run ends.
"""

from __future__ import annotations

import os
import shlex
from typing import Any

from ansible import constants as C
from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import connection_loader
from ansible.plugins.shell import ShellBase

from safeapply.target.layout import fence_path

NAME = "SAFEAPPLY_RUN"


def _marked(mark: str) -> None:
    original = ShellBase.env_prefix
    if getattr(original, "_safeapply", False):
        return
    fence = shlex.quote(fence_path(mark))

    def env_prefix(self: Any, **kwargs: Any) -> Any:  # the module refuses to start once the run's switch fired
        return f"test ! -e {fence} && " + original(self, **{NAME: mark, **kwargs})

    env_prefix._safeapply = True  # type: ignore[attr-defined]
    ShellBase.env_prefix = env_prefix


def _default(option: str) -> bool:
    """The ssh connection plugin's option is at Ansible's built-in default (no ansible.cfg entry, no env var)."""
    try:
        _value, origin = C.config.get_config_value_and_origin(option, plugin_type="connection", plugin_name="ssh")
    except Exception:  # an Ansible that names its options differently: leave everything as it is
        return False
    return bool(origin == "default")


def _speedups() -> None:
    connection_loader.get("ssh", class_only=True)  # registers the plugin's option definitions
    if _default("pipelining"):
        os.environ["ANSIBLE_PIPELINING"] = "True"
    control = os.environ.get("SAFEAPPLY_SSH_CONTROL_DIR")
    if control and _default("control_path_dir") and _default("control_path"):
        os.environ["ANSIBLE_SSH_CONTROL_PATH_DIR"] = control


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "safeapply_run"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        mark = os.environ.get("SAFEAPPLY_RUN_MARK", "")
        if mark:
            _marked(mark)
        if os.environ.get("SAFEAPPLY_ANSIBLE_SPEEDUPS") == "1":
            _speedups()
