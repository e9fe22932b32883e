"""What a playbook will do to a host: ports it binds, units and containers it touches, files it writes.

Every record carries the `TaskRef` that causes it; `TaskRef.order` is the task's position among all tasks
the host runs (handlers count after their play's tasks), which is what "earlier in the play" means.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TaskRef:
    order: int
    play: str
    name: str
    action: str  # as written, e.g. community.docker.docker_container
    path: str  # file:line
    handler: bool = False
    conditional: bool = False  # has a `when` that could not be decided before the run

    def __str__(self) -> str:
        return f"task {self.name!r} ({self.path})"


@dataclass(frozen=True)
class Bind:
    """A port the playbook makes something listen on. `address` None means every address (v4 and v6)."""

    proto: str
    address: str | None
    port: int
    task: TaskRef
    via: str  # container | compose | quadlet | unit | config | command
    owner_kind: str  # container | unit | unknown
    owner: str  # container name or unit name ("" when unknown)


@dataclass(frozen=True)
class UnitOp:
    unit: str
    op: str  # install | start | stop | restart | reload | enable | disable | mask | unmask
    task: TaskRef


@dataclass(frozen=True)
class ContainerOp:
    engine: str  # docker | podman | compose | quadlet
    name: str
    image: str
    state: str  # started | present | stopped | absent
    network_mode: str
    task: TaskRef
    unit: str = ""  # quadlet: the generated service


@dataclass(frozen=True)
class FileWrite:
    path: str
    task: TaskRef


@dataclass(frozen=True)
class Note:
    """Something the analysis could not know: an unresolved variable, an unknown port, a dynamic include."""

    kind: str  # unresolved | unknown-port | dynamic | skipped | not-analysed
    message: str
    task: TaskRef
    port_bearing: bool = False  # the task starts, installs or publishes something (unit, container, listener)

    @property
    def unanalysed(self) -> bool:
        """The task (or part of it) was not analysed: its ports may be missing from the plan."""
        return self.kind in NOT_ANALYSED


NOT_ANALYSED = ("unresolved", "dynamic", "skipped", "not-analysed")


@dataclass
class Intent:
    host: str
    binds: list[Bind] = field(default_factory=list)
    units: list[UnitOp] = field(default_factory=list)
    containers: list[ContainerOp] = field(default_factory=list)
    files: list[FileWrite] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    way_in: list[str] = field(default_factory=list)  # why SSH may change after the play: "task: reason"
    # "task: reason" -> the one account it touches: a way in only on a host that logs in as that account
    way_in_accounts: dict[str, str] = field(default_factory=dict)
    tasks: int = 0  # tasks the host runs (a loop counts once)
    conflicts: dict[str, list[str]] = field(default_factory=dict)  # unit -> its Conflicts= (stopped on start)
    strict_plan: bool = False  # asked for: an unanalysed port-bearing task blocks instead of warning
    # how it was resolved (playbook, inventory, limit, extra vars), to resolve again with the host's facts;
    # never in to_dict (extra vars may hold secrets)
    source: tuple[str, tuple[str, ...], str | None, tuple[str, ...], Any] | None = field(default=None, compare=False)

    @property
    def not_analysed(self) -> int:
        return len({n.task.order for n in self.notes if n.unanalysed})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source")
        return d

    def unit_ops(self, unit: str, ops: tuple[str, ...], before: int | None = None) -> list[UnitOp]:
        return [u for u in self.units if u.unit == unit and u.op in ops
                and (before is None or u.task.order < before)]
