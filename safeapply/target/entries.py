"""The package's entry points, by name: `python3 <version>.pyz ENTRY ARGS...` on a host, or
`safeapply.remote.call(transport, ENTRY, args)` from the controller.

Each entry is a function `(args: List[str]) -> int` that reads stdin and writes stdout itself (JSON for most,
a byte stream for the snapshot program). A TargetError becomes the protocol's one line and exit 3; any other
exception its traceback, a `SAFEAPPLY-ERROR internal` line and exit 1.
"""

import importlib
import sys
from typing import Callable, Dict, List, Tuple

from .errors import EXIT_CRASHED, EXIT_FAILED, TargetError, fail_line

ENTRIES: Dict[str, Tuple[str, str]] = {
    "probe.collect": ("probe", "main"),
    "lock.acquire": ("lock", "acquire"),
    "lock.release": ("lock", "release"),
    "checks.run": ("checks", "run"),
    "tasks.stop": ("tasks", "stop"),
    "deadman.arm": ("deadman", "arm"),
    "deadman.extend": ("deadman", "extend"),
    "deadman.fire": ("deadman", "fire"),
    "deadman.disarm": ("deadman", "disarm"),
    "deadman.status": ("deadman", "status"),
    "snapshot.scan": ("snapshot.main", "scan_entry"),
    "snapshot.send": ("snapshot.main", "send"),
    "snapshot.read": ("snapshot.main", "read"),
    "snapshot.restore": ("snapshot.main", "restore"),
}


def entry(name: str) -> Callable[[List[str]], int]:
    module, function = ENTRIES[name]
    fn: Callable[[List[str]], int] = getattr(importlib.import_module("." + module, __package__), function)
    return fn


def main(argv: List[str]) -> int:
    if not argv or argv[0] not in ENTRIES:
        fail_line("usage", "unknown entry {!r}; one of: {}".format(argv[0] if argv else "", ", ".join(ENTRIES)))
        return 2
    try:
        return entry(argv[0])(argv[1:]) or 0
    except TargetError as e:
        fail_line(e.kind, e.message)
        return EXIT_FAILED
    except Exception as e:
        import traceback

        traceback.print_exc()
        fail_line("internal", f"{type(e).__name__}: {e}")
        return EXIT_CRASHED
    finally:
        sys.stdout.flush()
