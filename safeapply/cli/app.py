"""The Typer application object and the options shared by commands. No logic lives here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from safeapply.cli.output import console

app = typer.Typer(
    name="safeapply",
    help="Guardrails for AI-written Ansible playbooks: snapshot, lint, scan and plan, apply with "
    "verification and automatic rollback. Exit codes are a public API: see `safeapply exit-codes`.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

InventoryOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--inventory", "-i", envvar="SAFEAPPLY_INVENTORY",
        help="Inventory source(s), as for ansible-playbook -i (file, directory or host list).",
    ),
]
LimitOpt = Annotated[
    str | None, typer.Option("--limit", "-l", help="Further limit hosts to an Ansible pattern.")
]
PatternArg = Annotated[str, typer.Argument(help="Host pattern, as in ansible (default: all).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
AcceptNewOpt = Annotated[
    bool,
    typer.Option(
        "--accept-new-host-keys", envvar="SAFEAPPLY_ACCEPT_NEW_HOST_KEYS",
        help="Trust and record host keys of hosts not yet in known_hosts (like ssh accept-new). "
        "A changed key is always rejected.",
    ),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
AcceptOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--accept", metavar="RULE[:FILE:LINE]",
        help="Let a blocking lint finding through on purpose (every finding of RULE, or the one at FILE:LINE); "
        "repeatable, also `accept = [...]` in safeapply.toml. The run record keeps what was accepted.",
    ),
]
PlaybookArg = Annotated[Path, typer.Argument(help="The playbook file.", show_default=False)]


def versions() -> dict[str, str]:
    """safeapply's, ansible-core's and ansible-lint's versions (as installed: what a bug report needs)."""
    from importlib import metadata

    from safeapply import __version__

    out = {"safeapply": __version__}
    for name in ("ansible-core", "ansible-lint"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _print_version(value: bool) -> None:
    if value:
        console.print(" ".join(f"{k} {v}" for k, v in versions().items()), markup=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version,
        help="Print safeapply's, ansible-core's and ansible-lint's versions and exit.")] = False,
) -> None:
    """Guardrails for AI-written Ansible playbooks: snapshot, lint, scan and plan, apply with verification
    and automatic rollback. Exit codes are a public API: see `safeapply exit-codes`."""
