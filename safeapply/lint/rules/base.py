"""What every rule module gets: the walked project, module lookups and the inventory's connection facts."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from safeapply.lint.model import Connection, Finding, Severity
from safeapply.lint.modules import ModuleInfo
from safeapply.lint.project import Project, Task


@dataclass
class Context:
    project: Project
    resolve: Callable[[str], ModuleInfo]
    connections: dict[str, Connection] = field(default_factory=dict)
    known_vars: frozenset[str] = frozenset()

    def tasks(self, *shorts: str) -> Iterator[tuple[Task, ModuleInfo]]:
        """Tasks (with their resolved module) whose module's short name is one of `shorts` (all if none)."""
        for task in self.project.tasks:
            if not task.action:
                continue
            info = self.resolve(task.action)
            if not shorts or info.short in shorts:
                yield task, info


class RuleModule(Protocol):
    ID: str
    SEVERITY: Severity
    DOC: str

    def check(self, ctx: Context) -> Iterable[Finding]: ...


def finding(rule: RuleModule, task: Task, key: str, message: str, fix: str,
            severity: Severity | None = None) -> Finding:
    return Finding(rule.ID, severity or rule.SEVERITY, task.file, task.key_line(key), message, fix)


def args_of(task: Task) -> dict[str, Any]:
    return task.args if isinstance(task.args, dict) else {}


def truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("yes", "true", "on", "1"))


def has_jinja(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def command_text(task: Task) -> str:
    """The command line of a shell/command/raw task ('' for other modules)."""
    if isinstance(task.args, str):
        return task.args
    args = args_of(task)
    cmd = args.get("cmd") or args.get("_raw_params") or args.get("argv") or ""
    return " ".join(map(str, cmd)) if isinstance(cmd, list) else str(cmd)


def template_text(task: Task, root: Path) -> str:
    """Text a copy/template/lineinfile/blockinfile task writes (template sources read from disk)."""
    args = args_of(task)
    parts = [str(args.get(k, "")) for k in ("content", "line", "block")]
    src = args.get("src")
    if isinstance(src, str) and not has_jinja(src):
        here = (root / task.file).parent
        for cand in (here / src, here.parent / "templates" / src, here.parent / "files" / src,
                     here / "templates" / src, here / "files" / src):
            if cand.is_file():
                with contextlib.suppress(OSError):
                    parts.append(cand.read_text(errors="replace"))
                break
    return "\n".join(p for p in parts if p)
