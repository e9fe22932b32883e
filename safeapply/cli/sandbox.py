"""`safeapply sandbox up|down|list|ssh|inventory`: disposable local test hosts (Linux, root)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from safeapply.cli.app import JsonOpt, app
from safeapply.cli.output import console, emit_json, err_console
from safeapply.errors import UsageError

sandbox_app = typer.Typer(
    help="Disposable local test hosts: Debian bookworm (trixie with --containers) booted with systemd-nspawn "
    "(systemd as PID 1, sshd), each in its own network namespace, reached over loopback or a private network of "
    "their own (--network). "
    "Linux and root only. Names carry the prefix $SAFEAPPLY_SANDBOX_PREFIX (default 'sa').",
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


def _read_line(path: str, what: str) -> str:
    """The first line of a file (`-`: stdin), without its newline; a missing file is one line, exit 2."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read the {what} from {path}: {getattr(e, 'strerror', None) or e}") from None
    return text.split("\n", 1)[0]


def _public_keys(paths: list[Path]) -> tuple[str, ...]:
    keys = []
    for path in paths:
        try:
            lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read public key {path}: {getattr(e, 'strerror', None) or e}") from None
        if not lines or not all(ln.split()[0].startswith(("ssh-", "ecdsa-", "sk-")) for ln in lines):
            raise UsageError(f"{path} is not an OpenSSH public key", "pass the .pub file")
        keys += lines
    return tuple(keys)


@sandbox_app.command("up")
def up(
    names: NamesArg,
    login_user: Annotated[str, typer.Option(
        "--login-user", metavar="USER",
        help="Log in as USER (inventory ansible_user, ssh_config User). root, deploy and nosudo exist; another "
        "name is created with passwordless sudo.")] = "root",
    sudo_password_file: Annotated[str | None, typer.Option(
        "--sudo-password-file", metavar="FILE",
        help="The login user's sudo needs a password: the first line of FILE ('-': stdin). Set inside the "
        "sandbox before boot; never written to the inventory.")] = None,
    no_root_login: Annotated[bool, typer.Option(
        "--no-root-login", help="sshd refuses root (PermitRootLogin no); needs --login-user.")] = False,
    network_name: Annotated[str | None, typer.Option(
        "--network", metavar="NET",
        help="Put the sandboxes on the private network NET (created on first use): an eth0 with a 10.231.x.y "
        "address, reachable from the other sandboxes on NET; SSH arrives on eth0, not loopback.")] = None,
    via: Annotated[str | None, typer.Option(
        "--via", metavar="BASTION",
        help="Reach the sandboxes only through the sandbox BASTION (ProxyJump); they join its network.")] = None,
    no_key_in_inventory: Annotated[bool, typer.Option(
        "--no-key-in-inventory",
        help="Leave the key file out of the inventory and ssh_config (keys from an ssh-agent).")] = False,
    authorized_key: Annotated[list[Path] | None, typer.Option(
        "--authorized-key", metavar="PUBFILE",
        help="Also let this public key log in as the login user (repeatable).")] = None,
    containers: Annotated[bool, typer.Option(
        "--containers", help="Boot Debian trixie with podman 5 (quadlet), docker (started on demand) and local "
        "images: a second cached rootfs, built once (about two minutes).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Boot sandboxes in parallel (builds the rootfs once, ~1 min) and print an inventory for `-i`. All or none:
    when one fails, the others are removed again."""
    from safeapply import sandbox as sb
    from safeapply.sandbox.containers import containers_rootfs_path
    from safeapply.sandbox.host import require_host_support

    require_host_support()
    layout = sb.Layout(login_user=login_user, root_login=not no_root_login, network=network_name, via=via,
                       key_in_inventory=not no_key_in_inventory)
    password = _read_line(sudo_password_file, "sudo password") if sudo_password_file is not None else None
    opts = sb.SandboxOptions(layout, password, _public_keys(authorized_key or []), containers)
    opts.check()
    if not containers and not sb.rootfs.rootfs_path().exists():
        err_console.print("building the sandbox rootfs (debootstrap, about a minute, once)...")
    if containers and not containers_rootfs_path().exists():
        err_console.print("building the containers sandbox rootfs (debootstrap trixie, podman, docker, about two "
                          "minutes, once)...")
    infos = sb.up_many(names, opts)
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
        state = f"running (leader PID {i.leader_pid})" if i.running else i.state
        where = f" {i.network} {i.address}" + (f" via {i.via}" if i.via else "") if i.network else ""
        console.print(f"{i.name:<20} {state:<28} inventory {i.inventory}{where}", markup=False)


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
    """Open a shell (or run a command) in a sandbox as its login user (root unless --login-user), with OpenSSH."""
    from safeapply import sandbox as sb

    p = sb.SandboxPaths(name)
    if not p.ssh_config.exists():
        raise UsageError(f"no sandbox {name}", "`safeapply sandbox list` shows the ones that exist")
    os.execvp("ssh", ["ssh", "-F", str(p.ssh_config), name, *ctx.args])
