"""Issue 11 item 14: a snapshot or restore call on a host that hangs ends after the inactivity limit (no byte
either way for SAFEAPPLY_IDLE_TIMEOUT seconds) with one line and exit 10, instead of hanging with the host lock.
The hang is real: a loop on the sandbox host stops (SIGSTOP) the snapshot program as soon as it starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.sandbox

SAFEAPPLY = Path(sys.executable).parent / "safeapply"
GUARD = 120  # a hang guard for the subprocess, not a speed assertion: on main the call never returned
PATTERN = "snapshot[.]scan"  # matches the snapshot program's command line, never the loop's own


def test_a_hung_snapshot_call_ends_in_one_line_and_exit_10(host_a, tmp_path: Path) -> None:
    # no sleep in the loop: on a quiet machine the whole snapshot of /etc takes about a tenth of a second
    host_a.sh(f"nohup sh -c 'while :; do pkill -STOP -f \"{PATTERN}\"; done' >/dev/null 2>&1 & "
              "echo $! > /run/hang-stopper.pid")
    env = {**os.environ, "SAFEAPPLY_STATE_DIR": str(tmp_path / "state"), "SAFEAPPLY_IDLE_TIMEOUT": "3"}
    try:
        for _attempt in range(5):  # the loop may still miss a program that is over before pkill looks again
            proc = subprocess.run([str(SAFEAPPLY), "snapshot", host_a.name, "-i", str(host_a.inventory)], env=env,
                                  capture_output=True, text=True, check=False, timeout=GUARD)
            if proc.returncode != 0:
                break
    finally:
        host_a.sh(f"kill $(cat /run/hang-stopper.pid); rm -f /run/hang-stopper.pid; pkill -KILL -f '{PATTERN}'; true")
    assert proc.returncode == 10, proc.stdout + proc.stderr
    errors = [x for x in proc.stderr.splitlines() if "error" in x]
    assert len(errors) == 1 and "a: snapshot.scan sent and read nothing for 3s" in errors[0], proc.stderr
