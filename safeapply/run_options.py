"""What one `safeapply run` was asked to do: built once by the CLI (keywords only), read by every stage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from safeapply.deadman.confirm import DEFAULT_MARGIN
from safeapply.deadman.switch import DEFAULT_DEADLINE
from safeapply.verify import DEFAULT_SETTLE


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    playbook: Path
    inventory: Sequence[str] = ()
    limit: str | None = None
    extra_vars: Sequence[str] = ()
    check: bool = False
    # handed to ansible-playbook as its own options; tags and --start-at-task also narrow the plan
    tags: Sequence[str] = ()
    skip_tags: Sequence[str] = ()
    start_at_task: str | None = None
    diff: bool = False
    verbosity: int = 0
    ansible_args: Sequence[str] = ()  # after `--`: verbatim
    yes: bool = False
    accept_new_host_keys: bool = False
    settle: float = DEFAULT_SETTLE
    rollback_packages: bool = False
    strict_lint: bool = False  # a part of lint that could not run blocks instead of warning
    strict_plan: bool = False  # a task the plan could not analyse that may start a listener blocks
    plan_check: bool = False  # plan from Ansible's own check mode (a check run before the apply)
    allow_check_mode_false: bool = False  # tasks with check_mode: false may run for real in that check run
    roots: Sequence[str] = ("/etc",)
    prompt_file: Path | None = None
    model: str | None = None
    note: str | None = None
    deadman_deadline: float = DEFAULT_DEADLINE  # seconds; 0 turns the dead-man's switch off
    deadman_keepalive: bool = True
    deadman_margin: float = DEFAULT_MARGIN  # how long past its deadline a shut-out host is waited for
    metrics_dir: Path | None = None
    notify_url: str | None = None
    notify_details: bool = False  # the notification carries hosts, playbook and message (redacted), not only status
    speedups: bool = True  # SSH pipelining and the run's own ControlPersist connections; False: Ansible's defaults
    accept: Sequence[str] = ()  # blocking lint findings let through on purpose: RULE or RULE:FILE:LINE

    @property
    def switch_on(self) -> bool:
        return self.deadman_deadline > 0 and not self.check
