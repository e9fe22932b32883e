"""The per-host run lock on the target: an atomic mkdir of PATH holding owner.json (run id, controller, pid).

    lock.acquire PATH OWNER_JSON STALE_RUN   -> {"acquired": true} | {"acquired": false, "held": {owner}}
                                                (+ "armed": [switches] when a takeover was refused)
    lock.release PATH RUN_ID                 -> {"released": bool} (a lock taken over by another run stays)

With STALE_RUN non-empty, a lock held by that run is removed first (the controller saw its process die),
unless a switch of another run is armed on this host and has not fired: it would restore on top of the
run taking over, so the lock stays and the answer names the switches (`"armed"`).
"""

import json
import os
import sys
from typing import Any, Dict, List

from .deadman import armed_elsewhere

OWNER = "owner.json"


def held(path: str) -> Dict[str, Any]:
    """The holder's owner record ({} when unreadable)."""
    try:
        with open(os.path.join(path, OWNER)) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def remove(path: str) -> None:
    for name in os.listdir(path) if os.path.isdir(path) else []:
        os.unlink(os.path.join(path, name))
    if os.path.isdir(path):
        os.rmdir(path)


def try_acquire(path: str, owner: Dict[str, Any], stale: str = "") -> Dict[str, Any]:
    """{} when acquired, else the holder's record (with "armed": [switches] when a takeover was refused)."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    if stale and os.path.isdir(path) and held(path).get("run_id") == stale:
        armed = armed_elsewhere(str(owner.get("run_id", "")))
        if armed:
            return dict(held(path), armed=armed)
        remove(path)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return held(path) or {"run_id": "?"}
    with open(os.path.join(path, OWNER), "w") as f:
        json.dump(owner, f)
    return {}


def try_release(path: str, run_id: str) -> bool:
    try:
        with open(os.path.join(path, OWNER)) as f:
            owner = json.load(f)
        if not isinstance(owner, dict) or owner.get("run_id") != run_id:
            return False  # not ours (taken over): leave it
    except (OSError, ValueError):
        pass
    remove(path)
    return True


def acquire(args: List[str]) -> int:
    holder = try_acquire(args[0], json.loads(args[1]), args[2] if len(args) > 2 else "")
    doc = {"acquired": not holder, "held": {k: v for k, v in holder.items() if k != "armed"}}
    if holder.get("armed"):
        doc["armed"] = holder["armed"]
    sys.stdout.write(json.dumps(doc) + "\n")
    return 0


def release(args: List[str]) -> int:
    sys.stdout.write(json.dumps({"released": try_release(args[0], args[1])}) + "\n")
    return 0
