"""`safeapply sandbox up|down|list|ssh|inventory`: disposable local test hosts (Linux, root)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from safeapply.cli.app import JsonOpt, app
from safeapply.cli.output import console, emit_json, err_console
from safeapply.errors import UsageError

sandbox_app = typer.Typer(
    help="Disposable local test hosts: Debian bookworm booted with systemd-nspawn (systemd as PID 1, sshd), "
    "each in its own network namespace, reached only over loopback. Linux and root only. Names carry the "
    "prefix $SAFEAPPLY_SANDBOX_PREFIX (default 'sa').",
    no_args_is_help=True,
)
app.add_typer(sandbox_app, name="sandbox")

NamesArg = Annotated[list[str], typer.Argument(help="Sandbox names: 1-20 of a-z, 0-9, '-'.", show_default=False)]


def _snippet(names: list[str]) -> str:
    import yaml

    from safeapply import sandbox as sb
    from safeapply.sandbox.host import inventory_vars

    hosts = {n: inventory_vars(sb.SandboxPaths(n)) for n in names}
    return yaml.safe_dump({"all": {"hosts": hosts}}, sort_keys=False)


@sandbox_app.command("up")
def up(
    names: NamesArg,
    containers: Annotated[bool, typer.Option("--containers", help="Boot with podman and local images "
                                             "(a second cached rootfs, built once, a few minutes).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Boot sandboxes in parallel (builds the rootfs once, ~1 min) and print an inventory for `-i`."""
    from safeapply import sandbox as sb
    from safeapply.sandbox.containers import containers_rootfs_path
    from safeapply.sandbox.host import require_host_support

    require_host_support()
    if not sb.rootfs.rootfs_path().exists():
        err_console.print("building the sandbox rootfs (debootstrap, about a minute, once)...")
    if containers and not containers_rootfs_path().exists():
        err_console.print("building the containers sandbox rootfs (podman, a few minutes, once)...")
    infos = sb.up_many(names, containers)
    if json_out:
        emit_json("sandbox", {"sandboxes": [i.to_dict() for i in infos]})
        return
    err_console.print(f"up: {', '.join(i.name for i in infos)}. Inventory (save it and pass it with -i):")
    sys.stdout.write(_snippet(names))


@sandbox_app.command("down")
def down(
    names: Annotated[list[str] | None, typer.Argument(help="Sandboxes to remove.", show_default=False)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Remove every sandbox of this prefix, and leftovers.")] = False,
) -> None:
    """Stop and remove sandboxes (their overlay, netns and cgroups)."""
    from safeapply import sandbox as sb
    from safeapply.sandbox.host import require_host_support

    require_host_support()
    if all_:
        removed = sb.down_all()
        err_console.print(f"down: {', '.join(removed) or 'nothing to remove'}")
        return
    if not names:
        raise UsageError("name a sandbox or pass --all")
    for name in names:
        sb.down(name)
        err_console.print(f"down: {name}")


@sandbox_app.command("list")
def list_(json_out: JsonOpt = False) -> None:
    """List sandboxes of this prefix."""
    from safeapply import sandbox as sb

    infos = [sb.info(sb.SandboxPaths(n)) for n in sb.known_names()]
    if json_out:
        emit_json("sandbox", {"sandboxes": [i.to_dict() for i in infos]})
        return
    for i in infos:
        state = f"running (leader PID {i.leader_pid})" if i.running else "not running"
        console.print(f"{i.name:<20} {state:<28} inventory {i.inventory}", markup=False)


@sandbox_app.command("inventory")
def inventory(names: Annotated[list[str] | None, typer.Argument(show_default=False)] = None) -> None:
    """Print an inventory (YAML) of running sandboxes, for `-i`."""
    from safeapply import sandbox as sb

    missing = sorted(set(names or []) - set(sb.known_names()))
    if missing:
        raise UsageError(f"no sandbox {', '.join(missing)}", "`safeapply sandbox list` shows the ones that exist")
    sys.stdout.write(_snippet(names or sb.known_names()))


@sandbox_app.command("leftovers")
def leftovers(json_out: JsonOpt = False) -> None:
    """List what a killed run left behind (netns, mounts, cgroups, processes); exit 1 if anything."""
    from safeapply import sandbox as sb

    left = sb.leftovers()
    if json_out:
        emit_json("sandbox-leftovers", {"leftovers": left})
    else:
        for item in left:
            console.print(item)
    if left:
        raise typer.Exit(1)


@sandbox_app.command("ssh", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ssh(name: Annotated[str, typer.Argument(show_default=False)], ctx: typer.Context) -> None:
    """Open a root shell (or run a command) in a sandbox, with OpenSSH."""
    from safeapply import sandbox as sb

    p = sb.SandboxPaths(name)
    if not p.ssh_config.exists():
        raise UsageError(f"no sandbox {name}", "`safeapply sandbox list` shows the ones that exist")
    os.execvp("ssh", ["ssh", "-F", str(p.ssh_config), name, *ctx.args])
