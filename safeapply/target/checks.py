"""Verify's user checks, run on the target after apply: `checks.run` reads the checks as JSON on stdin
(`safeapply.verify.load_checks` made them: kind tcp | http | command | unit, target, timeout, and port/host
or status) and prints a JSON list with one entry per check: null when it passed, else what went wrong."""

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional


def one(c: Dict[str, Any]) -> Optional[str]:
    k, t = c["kind"], c["timeout"]
    try:
        if k == "tcp":
            socket.create_connection((c["host"], c["port"]), timeout=t).close()
            return None
        if k == "http":
            try:
                code = urllib.request.urlopen(c["target"], timeout=t).status
            except urllib.error.HTTPError as e:
                code = e.code
            return None if code == c["status"] else "HTTP {}, expected {}".format(code, c["status"])
        if k == "command":
            p = subprocess.run(["sh", "-c", c["target"]], capture_output=True, timeout=t, check=False)
            tail = (p.stderr or p.stdout).decode("utf-8", "replace").strip().splitlines()
            return None if p.returncode == 0 else "exited {}{}".format(p.returncode, ": " + tail[-1] if tail else "")
        if k == "unit":
            p = subprocess.run(["systemctl", "is-active", c["target"]], capture_output=True, timeout=t, check=False)
            state = p.stdout.decode().strip()
            return None if state == "active" else "is " + (state or "unknown")
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def run_all(checks: List[Dict[str, Any]]) -> List[Optional[str]]:
    return [one(c) for c in checks]


def run(args: List[str]) -> int:
    sys.stdout.write(json.dumps(run_all(json.loads(sys.stdin.read()))) + "\n")
    return 0
