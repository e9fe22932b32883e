"""node_exporter textfile-collector metrics for cron/timer runs, written atomically (temp file + rename).

One file per playbook (`safeapply_<name>.prom`) so that several cron jobs sharing a metrics dir do not
overwrite each other; node_exporter reads every `*.prom` file in the directory.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from safeapply.errors import ExitCode, UsageError


@dataclass(frozen=True)
class RunMetrics:
    playbook: str  # a short name, used as the label and in the file name
    exit_code: int
    finished_unix: float
    duration_seconds: float
    rolled_back: bool
    rollbacks_total: int


def render(m: RunMetrics) -> str:
    label = f'playbook="{_escape(m.playbook)}"'
    lines = [
        ("safeapply_last_run_exit_code", "gauge", "Exit code of the last safeapply run (0 = applied).",
         m.exit_code),
        ("safeapply_last_run_success", "gauge", "1 if the last run applied and verified (or had nothing "
         "to change).", int(m.exit_code in (ExitCode.OK, ExitCode.NOTHING_TO_CHANGE))),
        ("safeapply_last_run_timestamp_seconds", "gauge", "When the last run finished (unix time).",
         round(m.finished_unix, 3)),
        ("safeapply_last_run_duration_seconds", "gauge", "Wall time of the last run.",
         round(m.duration_seconds, 3)),
        ("safeapply_last_run_rolled_back", "gauge", "1 if the last run was rolled back.", int(m.rolled_back)),
        ("safeapply_rollbacks_total", "counter", "Runs of this playbook that were rolled back.",
         m.rollbacks_total),
    ]
    out: list[str] = []
    for name, kind, help_, value in lines:
        out += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}", f"{name}{{{label}}} {value}"]
    return "\n".join(out) + "\n"


def check_dir(directory: Path) -> None:
    """Before a run: make sure its metrics can be written (a run must not fail after apply for this)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--metrics-dir {directory}: {e.strerror or e}", "give a writable directory") from e
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"--metrics-dir {directory}: not writable", "give a writable directory")


def write(directory: Path, m: RunMetrics) -> Path:
    """Write the metrics file atomically; node_exporter never sees a half-written file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"safeapply_{_slug(m.playbook)}.prom"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".safeapply-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(render(m))
        os.chmod(tmp, 0o644)  # read by node_exporter, often another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "playbook"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
