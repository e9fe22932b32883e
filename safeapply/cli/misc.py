"""Small commands: version and the exit-code table."""

from __future__ import annotations

from safeapply import __version__
from safeapply.cli.app import JsonOpt, app
from safeapply.cli.output import console, emit_json
from safeapply.exitcodes import TABLE


@app.command()
def version() -> None:
    """Print safeapply's version."""
    console.print(__version__)


@app.command("exit-codes")
def exit_codes(json_out: JsonOpt = False) -> None:
    """Print the exit-code table (a public API: codes are never renumbered)."""
    if json_out:
        emit_json([{"code": int(c), "name": c.name, "meaning": m} for c, m in TABLE])
        return
    for code, meaning in TABLE:
        console.print(f"{int(code):>4}  {meaning}")


