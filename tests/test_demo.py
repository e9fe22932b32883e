"""`make demo` (scripts/demo.sh), the README's main-job command, runs in CI: the cases of the main job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.sandbox
ROOT = Path(__file__).parents[1]


def test_demo_script(sandbox_factory, tmp_path: Path) -> None:  # sandbox_factory: skip/fail like the others
    env = {**os.environ, "SAFEAPPLY_SANDBOX_PREFIX": "satd", "SAFEAPPLY_STATE_DIR": str(tmp_path / "state"),
           "SAFEAPPLY": str(Path(sys.executable).parent / "safeapply")}
    proc = subprocess.run(["bash", "scripts/demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "node_exporter.service (python3 PID" in out  # (a) names the unit and the PID on :9090
    assert "container agent is not running (exited" in out and "9090/tcp is held by node_exporter.service" in out
    assert out.count("web1: 0 changes since") == 2       # (a2) the container incident and (b): restored exactly
    assert "applied and verified" in out                 # (c)
    assert "every case behaved as described" in out
    left = subprocess.run([env["SAFEAPPLY"], "sandbox", "leftovers"], env=env, capture_output=True, text=True)
    assert left.returncode == 0, left.stdout
