"""`safeapply ping`: can safeapply work on these hosts (SSH, host key, python3, root through become)?"""

from __future__ import annotations

from rich.markup import escape

from safeapply.cli.ansible_opts import ansible_options
from safeapply.cli.app import AcceptNewOpt, InventoryOpt, JsonOpt, LimitOpt, PatternArg, app
from safeapply.cli.output import console, emit_json


@app.command()
@ansible_options
def ping(
    pattern: PatternArg = "all",
    inventory: InventoryOpt = None,
    limit: LimitOpt = None,
    accept_new_host_keys: AcceptNewOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Check that each host is reachable over SSH with a known host key, has python3, and becomes root
    (a root login, passwordless sudo, or sudo/su with the become password).
    Exits with the code of the first failing host (see `safeapply exit-codes`)."""
    from safeapply.inventory import resolve_hosts
    from safeapply.parallel import per_host
    from safeapply.preflight import connect_and_check

    hosts = resolve_hosts(inventory, pattern, limit)
    results = per_host(hosts, lambda h: connect_and_check(h, accept_new_host_keys))
    if json_out:
        emit_json("ping", {"hosts": {name: (r.to_dict() if not isinstance(r, Exception) else {"error": str(r)})
                                     for name, r in results.items()}})
    else:
        for name, r in results.items():
            if isinstance(r, Exception):
                console.print(f"[red]FAIL[/] {name}: {escape(str(r))}")
            else:
                console.print(f"[green]ok[/]   {escape(name)}: user {escape(r.user)}, root via {r.root_via}, "
                              f"python {r.python}")
    errors = [r for r in results.values() if isinstance(r, Exception)]
    if errors:
        raise errors[0]
