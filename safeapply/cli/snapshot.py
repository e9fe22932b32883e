"""`safeapply snapshot`, `snapshots`, `diff`, `restore`, `prune`: thin commands over safeapply.snapshot."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from safeapply.cli.ansible_opts import ansible_options
from safeapply.cli.app import AcceptNewOpt, InventoryOpt, JsonOpt, LimitOpt, YesOpt, app
from safeapply.cli.output import console, emit_json, err_console, interactive
from safeapply.errors import UsageError

if TYPE_CHECKING:  # imported inside the commands: `import safeapply.cli` stays cheap
    from safeapply.inventory import Host

RootOpt = Annotated[
    list[str] | None,
    typer.Option("--root", "-r", help="A directory to snapshot (repeatable). Default: /etc."),
]
HostArg = Annotated[str, typer.Argument(help="One inventory host.", show_default=False)]


@contextmanager
def progress(quiet: bool) -> Iterator[Callable[[str], None]]:
    """A spinner line per message on a terminal; plain lines on stderr otherwise."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    lock = threading.Lock()
    if quiet or not err_console.is_terminal:
        def plain(msg: str) -> None:
            with lock:
                err_console.print(escape(msg), soft_wrap=True)
        yield plain
        return
    cols = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*cols, console=err_console, transient=True) as bar:
        tasks: dict[str, object] = {}

        def show(msg: str) -> None:
            host = msg.split(":", 1)[0]
            with lock:
                if host not in tasks:
                    tasks[host] = bar.add_task(escape(msg))
                bar.update(tasks[host], description=escape(msg))  # type: ignore[arg-type]
        yield show


def one_host(inventory: list[str] | None, name: str) -> Host:
    from safeapply.inventory import resolve_hosts

    hosts = resolve_hosts(inventory, name)
    if len(hosts) != 1:
        raise UsageError(f"{name!r} matches {len(hosts)} hosts; name exactly one")
    return hosts[0]


@app.command()
@ansible_options
def snapshot(
    pattern: Annotated[str, typer.Argument(help="Host or Ansible pattern; several hosts run in parallel.")],
    inventory: InventoryOpt = None,
    limit: LimitOpt = None,
    root: RootOpt = None,
    accept_new_host_keys: AcceptNewOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Snapshot /etc (or --root dirs) of each host: content, owner, mode, mtime, xattrs, ACLs. Only blobs the
    store lacks are sent; a copy is also kept on each host under /var/lib/safeapply. Exit 15 if one failed."""
    from safeapply.inventory import resolve_hosts
    from safeapply.parallel import per_host
    from safeapply.snapshot import Store, take
    from safeapply.snapshot.manifest import show_path
    from safeapply.snapshot.roots import canonical_roots

    roots = canonical_roots(root or ["/etc"])  # a bad root is the user's mistake, not each host's failure
    hosts = resolve_hosts(inventory, pattern, limit)
    store = Store()
    with progress(json_out) as say:
        def one(h: Host) -> object:
            with h.connect(accept_new_host_keys) as t:
                return take(t, roots, store, progress=say)
        results = per_host(hosts, one)
    if json_out:
        emit_json("snapshot", {"hosts": {n: (r.as_dict() if hasattr(r, "as_dict") else {"error": str(r)})
                                         for n, r in results.items()}})
    for name, r in results.items():
        if isinstance(r, Exception):
            if len(results) == 1:
                continue  # the one error line below says it all
            err_console.print(f"[red]FAIL[/] {escape(name)}: {escape(str(r))}")
        elif not json_out:
            info = r.as_dict()  # type: ignore[attr-defined]
            console.print(f"{escape(name)}: {info['id']}  {info['files']} paths, {_size(int(info['size']))}, "
                          f"{info['new_blobs']} new blobs, {_size(int(info['bytes_received']))} received")
            for p in info["unreadable"]:
                console.print(f"  [yellow]unreadable[/] {escape(show_path(p))}")
    errors = [r for r in results.values() if isinstance(r, Exception)]
    if errors:
        raise errors[0]


@app.command()
def snapshots(
    host: Annotated[str | None, typer.Argument(help="Only this host's snapshots.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List stored snapshots (oldest first) with their dates, path counts and content sizes."""
    from safeapply.snapshot import Store

    rows = Store().summaries(host)
    if json_out:
        emit_json("snapshots", {"snapshots": [r.__dict__ for r in rows]})
        return
    for r in rows:
        console.print(f"{r.id}  {r.host}  {r.created[:19].replace('T', ' ')}  {r.files} paths  {_size(r.size)}",
                      markup=False)


@app.command("diff")
@ansible_options
def diff_cmd(
    host: HostArg,
    snapshot_id: Annotated[str | None, typer.Argument(metavar="SNAPSHOT", help="Id or prefix (default: latest).")]
    = None,
    inventory: InventoryOpt = None,
    show_secrets: Annotated[bool, typer.Option("--show-secrets", help="Show secret files and values.")] = False,
    secret_path: Annotated[list[str] | None, typer.Option(
        "--secret-path", help="Extra glob of secret files (repeatable; also $SAFEAPPLY_SECRET_PATHS).")] = None,
    accept_new_host_keys: AcceptNewOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """What changed on HOST since a snapshot: added, removed, modified, metadata-only, with unified diffs of
    text files. Secrets (shadow, private keys, password/secret/token values) are redacted by default."""
    from safeapply.redact import clean_terminal
    from safeapply.snapshot import Store, diff
    from safeapply.snapshot.manifest import show_path

    h = one_host(inventory, host)
    with h.connect(accept_new_host_keys) as t:
        sid, changes = diff(t, snapshot_id, Store(), show_secrets, secret_path or ())
    if json_out:
        emit_json("diff", {"host": h.name, "snapshot": sid, "changes": [c.as_dict() for c in changes]})
        return
    console.print(f"{h.name}: {len(changes)} changes since {sid}")
    for c in changes:
        extra = f" ({', '.join(c.fields)})" if c.fields else (" (secret: content hidden)" if c.secret else "")
        console.out(f"{c.kind:>9} {show_path(c.path)}{extra}", highlight=False)
        if c.diff:  # the host's file contents: control sequences shown, never sent to the terminal
            console.out(clean_terminal(c.diff), end="", highlight=False)


@app.command("restore")
@ansible_options
def restore_cmd(
    host: HostArg,
    snapshot_id: Annotated[str, typer.Argument(metavar="SNAPSHOT", help="Id, unique prefix, or `latest`.")],
    inventory: InventoryOpt = None,
    yes: YesOpt = False,
    accept_new_host_keys: AcceptNewOpt = False,
    deadman_deadline: Annotated[float, typer.Option(
        "--deadman-deadline", envvar="SAFEAPPLY_DEADMAN_DEADLINE", min=0,
        help="The dead-man's switch armed around the restore: if it cuts SSH (or this command dies), the host "
        "finishes the restore itself after this many seconds. 0 turns it off.")] = 300.0,
    json_out: JsonOpt = False,
) -> None:
    """Put HOST's snapshotted roots back exactly: content, deleted files, files created since (removed),
    owner, mode, mtime, xattrs, ACLs. Everything is verified first. Asks unless --yes. Holds the host lock
    (exit 4 while a run holds it) with the dead-man's switch armed around the restore; disarmed once the
    host matches the snapshot. A restore that was interrupted on the host is completed by this one."""
    import datetime as dt

    from safeapply.deadman.around import Guard, armed_around, half_restored
    from safeapply.errors import SafeapplyError, SnapshotError
    from safeapply.lock import host_lock
    from safeapply.snapshot import Store, restore
    from safeapply.snapshot.diff import diff
    from safeapply.snapshot.manifest import show_path

    h = one_host(inventory, host)
    store = Store()
    sid = store.resolve(h.name, snapshot_id)
    if not yes:
        if not interactive():
            raise UsageError("refusing to restore without --yes: stdin is not a terminal")
        typer.confirm(f"Restore {h.name} to {sid}?", abort=True)
    job = "restore-" + dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    armed: list[Guard] = []
    try:
        with progress(json_out) as say, h.connect(accept_new_host_keys) as t, host_lock(t, job), \
                armed_around(t, job, sid, deadman_deadline) as guard:
            armed.append(guard)
            try:
                report = restore(t, sid, store, progress=say)
            except SafeapplyError:
                if not half_restored(t):  # it changed nothing (corrupt, unsafe, disk full): nothing to finish
                    guard.verified()
                raise
            guard.verified()  # finished: disarmed whatever the check below finds (the switch would change nothing)
            left = [c.path for c in diff(t, sid, store)[1]]
    except SafeapplyError as e:  # cut off or failed half-way: the switch finishes it (say so, and how to stop it)
        if armed and armed[0].armed is not None and not armed[0].ok:
            e.hint = ((e.hint + "; ") if e.hint else "") + (
                f"the dead-man's switch {job} stays armed and restores {sid} at {armed[0].armed.deadline} "
                f"(host clock); `safeapply deadman {job} --release --host {h.name} -i INVENTORY` disarms it")
        raise
    if left:
        raise SnapshotError(f"{h.name}: restored {sid}, but {len(left)} paths still differ (e.g. {left[0]})",
                            "look at the host: `safeapply diff`")
    if json_out:
        emit_json("restore", {**report.as_dict(), "switch": guard.to_dict()})
        return
    if report.interrupted:
        console.print(f"{h.name}: an interrupted restore to {report.interrupted.get('snapshot')} (started "
                      f"{report.interrupted.get('started')}) was found; this restore completed it", markup=False)
    console.print(f"{h.name}: restored {sid}: {len(report.changes)} changes", markup=False)
    for c in report.changes:
        console.out(f"{c['action']:>9} {show_path(c['path'])} {c['detail']}", highlight=False)


@app.command()
def prune(
    keep: Annotated[int, typer.Option("--keep", min=1, help="Snapshots to keep per host (newest).")],
    json_out: JsonOpt = False,
) -> None:
    """Delete all but the newest N snapshots of each host, then the blobs no snapshot needs."""
    from safeapply.snapshot import Store

    gone, freed = Store().prune(keep)
    if json_out:
        emit_json("prune", {"removed": gone, "freed_bytes": freed})
        return
    for sid in gone:
        console.print(f"removed {sid}")
    console.print(f"freed {_size(freed)}")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"
