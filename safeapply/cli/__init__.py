"""The CLI and its one error funnel: every exception becomes one line on stderr and a documented exit code."""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import NoReturn

import typer
from typer.exceptions import TyperException

from safeapply import signals
from safeapply.cli import commands as _commands  # noqa: F401 - registers the commands on `app`
from safeapply.cli.app import app
from safeapply.errors import ExitCode, SafeapplyError, Terminated


def _write_crash_log() -> str:
    from safeapply.config import log_dir

    try:
        path = log_dir() / f"crash-{dt.datetime.now():%Y%m%d-%H%M%S}.log"
        path.write_text(traceback.format_exc())
        path.chmod(0o600)
        return str(path)
    except OSError:
        return "unavailable: could not write the log"


def main(argv: Sequence[str] | None = None) -> int:
    signals.raise_on_terminate()
    try:
        from safeapply import project_config

        defaults = project_config.load().default_map()  # safeapply.toml: below flags and env vars
        rv = app(args=list(argv) if argv is not None else None, standalone_mode=False, default_map=defaults)
        if rv == ExitCode.INTERRUPTED:  # typer turns Ctrl-C into a silent return of 130
            print("safeapply: interrupted", file=sys.stderr)
        return int(rv) if isinstance(rv, int) else 0
    except SafeapplyError as e:
        print(f"safeapply: error: {e}", file=sys.stderr)
        return int(e.exit_code)
    except typer.Exit as e:
        return int(e.exit_code)
    except TyperException as e:  # click's usage errors: one line, and where to read more
        ctx, msg = getattr(e, "ctx", None), e.format_message()
        see = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        if msg:  # empty: no arguments at all, and the help was shown instead
            print(f"safeapply: error: {msg}{see}", file=sys.stderr)
        return ExitCode.USAGE
    except (KeyboardInterrupt, typer.Abort):
        print("safeapply: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Terminated as e:
        print(f"safeapply: {e}", file=sys.stderr)
        return ExitCode.TERMINATED if e.signum == signal.SIGTERM else 128 + e.signum
    except Exception as e:  # the funnel: a bug, not a user error
        where = _write_crash_log()
        print(f"safeapply: internal error: {type(e).__name__}: {e} (traceback in {where})", file=sys.stderr)
        return ExitCode.INTERNAL


def run_cli() -> NoReturn:
    """The `safeapply` command: `main()`, then exit without the interpreter's teardown of Ansible's and
    paramiko's module graph (about 0.2 s per run) — after doing what a normal exit does that matters:
    wait for non-daemon threads, run the atexit handlers (temp files, logging), flush stdout and stderr."""
    code = main()
    for t in threading.enumerate():
        if t is not threading.current_thread() and not t.daemon:
            t.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing left to tell anyone
            stream.flush()
    os._exit(code)
