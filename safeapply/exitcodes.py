"""The documented meaning of each exit code (rendered by `safeapply exit-codes`, pinned by a test)."""

from __future__ import annotations

from safeapply.errors import ExitCode as E

TABLE: list[tuple[E, str]] = [
    (E.OK, "success: applied and verified (or the command did what was asked)"),
    (E.ERROR, "error with no more specific code"),
    (E.USAGE, "bad usage or bad input (missing file, invalid YAML, bad option, unknown id); host untouched"),
    (E.CONFIG, "invalid configuration; host untouched"),
    (E.LOCKED, "another run holds the lock for a host; host untouched"),
    (E.INTERNAL, "internal error (a bug); traceback in the log file named on stderr"),
    (E.NOTHING_TO_CHANGE, "success: the playbook ran and changed nothing"),
    (E.UNREACHABLE, "host unreachable; stopped before any change"),
    (E.AUTH, "SSH authentication failed; stopped before any change"),
    (E.HOST_KEY, "unknown or changed SSH host key; stopped before any change"),
    (E.SUDO, "cannot become root: sudo/su needs a password, the become password was refused, sudo is not "
              "allowed, or it needs a terminal (`requiretty`); stopped before any change"),
    (E.NO_PYTHON, "no python3 on the target (or not at `ansible_python_interpreter`); stopped before any change"),
    (E.SNAPSHOT, "snapshot failed, or a stored snapshot is corrupt; stopped before any change"),
    (E.LINT, "lint found blocking problems; stopped before any change"),
    (E.PREFLIGHT, "preflight plan blocked (collisions); stopped before any change"),
    (E.NO_HOSTS, "no host matched the pattern/limit; nothing done"),
    (E.VAULT, "a vault-encrypted file or value could not be decrypted (no, wrong or unreadable vault password); "
              "nothing done"),
    (E.ROLLED_BACK, "apply or verification failed; rolled back and the rollback verified"),
    (E.ROLLBACK_FAILED, "rollback failed or could not be verified: a person must look"),
    (E.SWITCH_ARMED, "`safeapply deadman`: a dead-man's switch is still armed (it restores the host at its "
     "deadline unless a later run confirms it)"),
    (E.INTERRUPTED, "interrupted by Ctrl-C (rollback attempted first)"),
    (E.TERMINATED, "terminated by SIGTERM (rollback attempted first)"),
]
