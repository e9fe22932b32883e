"""Shared by the target tests: run the package's entries in a child process, as a host runs them."""

import os
import subprocess
import sys
from typing import List, Optional, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_entry(argv: List[str], stdin: bytes = b"", env: Optional[dict] = None) -> Tuple[int, bytes, str]:
    """`python -m safeapply.target ENTRY ARGS` with this interpreter: (exit status, stdout, stderr)."""
    full_env = dict(os.environ, PYTHONPATH=REPO, **(env or {}))
    p = subprocess.run([sys.executable, "-m", "safeapply.target", *argv], input=stdin, capture_output=True,
                       env=full_env, cwd=REPO, timeout=120, check=False)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")
