"""One error root. Each class owns its exit code (a public API: never renumber, only append).

Library code raises these; only the CLI funnel (`safeapply.cli.main`) turns them into output and an exit
code. Messages are one line, name the host/user/file involved, say what to do, and never carry a secret.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    CONFIG = 3
    LOCKED = 4
    INTERNAL = 5
    NOTHING_TO_CHANGE = 6
    UNREACHABLE = 10
    AUTH = 11
    HOST_KEY = 12
    SUDO = 13
    NO_PYTHON = 14
    SNAPSHOT = 15
    LINT = 16
    PREFLIGHT = 17
    NO_HOSTS = 18
    VAULT = 19
    ROLLED_BACK = 20
    ROLLBACK_FAILED = 21
    SWITCH_ARMED = 22
    INTERRUPTED = 130
    TERMINATED = 143

    @property
    def ok(self) -> bool:
        """The run did what was asked (applied and verified, or nothing to change)."""
        return self in (ExitCode.OK, ExitCode.NOTHING_TO_CHANGE)

    @property
    def status(self) -> str:
        """The run record's status name for a run that ended with this code."""
        return _STATUS.get(self, f"exit-{int(self)}")


_STATUS = {ExitCode.OK: "applied", ExitCode.NOTHING_TO_CHANGE: "unchanged", ExitCode.LINT: "lint-failed",
           ExitCode.PREFLIGHT: "blocked", ExitCode.ROLLED_BACK: "rolled-back",
           ExitCode.ROLLBACK_FAILED: "rollback-failed", ExitCode.SWITCH_ARMED: "still-armed",
           ExitCode.LOCKED: "locked", ExitCode.VAULT: "vault-error", ExitCode.INTERNAL: "internal-error",
           ExitCode.INTERRUPTED: "interrupted",
           ExitCode.TERMINATED: "terminated"}


def status_of(code: int) -> str:
    """Status name of any exit code (128+n for other signals included)."""
    try:
        return ExitCode(code).status
    except ValueError:
        return f"exit-{code}"


def signal_exit_code(signum: int) -> int:
    """What the CLI exits with when a signal ended the run: 130 for Ctrl-C, 128+n otherwise."""
    return 128 + signum


class SafeapplyError(Exception):
    """Root of every error safeapply reports to a user."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(SafeapplyError):
    """Bad input: a missing file, invalid YAML, a bad option value, an unknown snapshot or run id."""

    exit_code = ExitCode.USAGE


class ConfigError(SafeapplyError):
    exit_code = ExitCode.CONFIG


class LockedError(SafeapplyError):
    exit_code = ExitCode.LOCKED


class UnreachableError(SafeapplyError):
    exit_code = ExitCode.UNREACHABLE


class AuthError(SafeapplyError):
    exit_code = ExitCode.AUTH


class HostKeyError(SafeapplyError):
    exit_code = ExitCode.HOST_KEY


class SudoError(SafeapplyError):
    exit_code = ExitCode.SUDO


class NoPythonError(SafeapplyError):
    exit_code = ExitCode.NO_PYTHON


class SnapshotError(SafeapplyError):
    """A snapshot could not be taken, stored, read or verified. Nothing on the host was changed."""

    exit_code = ExitCode.SNAPSHOT


class LintFailed(SafeapplyError):
    exit_code = ExitCode.LINT


class PreflightBlocked(SafeapplyError):
    exit_code = ExitCode.PREFLIGHT


class NoHostsMatched(SafeapplyError):
    exit_code = ExitCode.NO_HOSTS


class VaultError(SafeapplyError):
    """A vault-encrypted file or value could not be decrypted: no vault password given, a wrong one, or a password
    file/script that is missing or fails. Nothing was changed."""

    exit_code = ExitCode.VAULT


class RolledBack(SafeapplyError):
    exit_code = ExitCode.ROLLED_BACK


class RollbackFailed(SafeapplyError):
    exit_code = ExitCode.ROLLBACK_FAILED


class CommandFailed(SafeapplyError):
    """A command on a host exited non-zero where success was required."""

    def __init__(self, host: str, argv: list[str] | tuple[str, ...], rc: int, stderr: bytes) -> None:
        tail = stderr.decode("utf-8", "replace").strip().splitlines()
        detail = tail[-1] if tail else "no output"
        super().__init__(f"{host}: `{' '.join(argv)[:120]}` exited {rc}: {detail}")
        self.host = host
        self.argv = tuple(argv)
        self.rc = rc
        self.stderr = stderr


class Terminated(BaseException):
    """SIGTERM/SIGHUP turned into an exception so that context managers can clean up and roll back."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum
