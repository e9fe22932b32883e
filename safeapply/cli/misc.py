"""Small commands: version, the exit-code table and the effective settings."""

from __future__ import annotations

from safeapply.cli.app import JsonOpt, app, versions
from safeapply.cli.output import console, emit_json
from safeapply.exitcodes import TABLE


@app.command()
def version(json_out: JsonOpt = False) -> None:
    """Print safeapply's, ansible-core's and ansible-lint's versions."""
    if json_out:
        emit_json("version", {"versions": versions()})
        return
    console.print(" ".join(f"{k} {v}" for k, v in versions().items()), markup=False)


@app.command("exit-codes")
def exit_codes(json_out: JsonOpt = False) -> None:
    """Print the exit-code table (a public API: codes are never renumbered)."""
    if json_out:
        emit_json("exit-codes", {"codes": [{"code": int(c), "name": c.name, "meaning": m} for c, m in TABLE]})
        return
    for code, meaning in TABLE:
        console.print(f"{int(code):>4}  {meaning}")


@app.command("config")
def config_cmd(json_out: JsonOpt = False) -> None:
    """Print the effective settings and where each came from (env var, safeapply.toml, or the default).

    The config file is $SAFEAPPLY_CONFIG, else ./safeapply.toml, else ~/.config/safeapply/config.toml;
    flags given on a command line override all of these."""
    from safeapply import project_config

    cfg = project_config.load()
    rows = cfg.effective()
    if json_out:
        emit_json("config", {"file": str(cfg.path) if cfg.path else None,
                             "settings": {k: {"value": v, "source": src} for k, v, src in rows}})
        return
    console.print(f"config file: {cfg.path or '(none found)'}", markup=False)
    for key, value, source in rows:
        console.print(f"{key:>16} = {value!r:<30} ({source})", markup=False)
