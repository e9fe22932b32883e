"""The one error protocol of code that runs on hosts: a failure is one stderr line

    SAFEAPPLY-ERROR <kind> <message>

and exit status 3 (1 for a crash, after its traceback: kind `internal`). The controller turns the kind into
a safeapply error class in one place (`safeapply.remote`). Kinds: `usage`, `internal`, `deadman`, the
snapshot program's `store`, `unsafe`, `corrupt`, `missing`, `protocol`, `space`, `partial`, `unknown`, and
the bootstrap's `python`, `install`, `not-installed`.
"""

import sys

ERROR = "SAFEAPPLY-ERROR"
EXIT_FAILED = 3
EXIT_CRASHED = 1


class TargetError(Exception):
    """A failure reported as one line: `kind` picks the controller's error class, wording and exit code."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def fail_line(kind: str, message: str) -> None:
    text = message.replace("\n", " ")
    sys.stderr.write(f"{ERROR} {kind} {text}\n")
