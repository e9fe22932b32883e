"""The containers one task result names: what rollback may treat as the run's besides the plan's `ContainerOp`s.

    podman_container / docker_container   the module's `name` and the `container` it reports (Name, Id)
    docker_compose_v2                     the `containers` it reports (Name, ID)
    command / shell                       `podman|docker run|create --name X`, `stop|start|rm|... X`, and the ID
                                          a detached `run -d` or a `create` printed (an unnamed container)

Pure: the result dict as Ansible reports it in, names and IDs out. Anything else names nothing.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from typing import Any

from safeapply.intent.ports import engine_verb, parse_run

_ID = re.compile(r"^[0-9a-f]{64}$")
_VERBS = frozenset({"stop", "start", "restart", "kill", "rm", "pause", "unpause", "update", "rename"})
_VALUED = frozenset({"-t", "--time", "-s", "--signal", "--timeout"})  # options of those verbs that take a value
_SPLIT = re.compile(r"&&|;|\|\||\||\n")
def containers_named(action: str, res: dict[str, Any]) -> tuple[str, ...]:
    """Container names and full IDs this task result names (empty: none)."""
    short = action.rsplit(".", 1)[-1]
    if short in ("podman_container", "docker_container"):
        return _module(res)
    if short in ("docker_compose_v2", "docker_compose"):
        found = res.get("containers") or []
        return tuple(dict.fromkeys(str(c.get(k) or "").lstrip("/") for c in found if isinstance(c, dict)
                                   for k in ("Name", "ID", "Id") if c.get(k)))
    if short in ("command", "shell", "raw"):
        return _commands(res)
    return ()


def _module(res: dict[str, Any]) -> tuple[str, ...]:
    args = (res.get("invocation") or {}).get("module_args") or {}
    found = res.get("container") or {}
    out = [str(args.get("name") or "")]
    if isinstance(found, dict):
        out += [str(found.get("Name") or "").lstrip("/"), str(found.get("Id") or "")]
    return tuple(dict.fromkeys(x for x in out if x))


def _commands(res: dict[str, Any]) -> tuple[str, ...]:
    cmd = res.get("cmd")
    text = " ".join(map(str, cmd)) if isinstance(cmd, list) else str(cmd or "")
    out: list[str] = []
    prints_id = False
    for part in _SPLIT.split(text):
        names, creates = _command(part.strip())
        out += names
        prints_id = prints_id or creates
    if prints_id:  # a detached `run` and `create` print the new container's full ID: an unnamed one is found by it
        out += [ln.strip() for ln in str(res.get("stdout") or "").splitlines() if _ID.match(ln.strip())]
    return tuple(dict.fromkeys(x for x in out if x))


def _command(cmd: str) -> tuple[list[str], bool]:
    """(names, prints an ID) of one `podman|docker ...` command line."""
    try:
        argv = shlex.split(cmd)
    except ValueError:
        return [], False
    at = next((i for i, a in enumerate(argv) if posixpath.basename(a) in ("podman", "docker")), None)
    if at is None:
        return [], False
    verb, args = engine_verb(posixpath.basename(argv[at]), argv[at + 1:])
    if verb in ("run", "create"):  # both print the new container's ID (`run` when detached)
        run = parse_run([argv[at], "run", *args])
        return ([run.name] if run is not None and run.name else []), True
    if verb in _VERBS:
        names = [a for i, a in enumerate(args) if not a.startswith("-") and (i == 0 or args[i - 1] not in _VALUED)]
        return names, False
    return [], False


