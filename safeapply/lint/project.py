"""Walk playbooks into tasks: plays, blocks, handlers, roles and statically imported task files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safeapply.lint.loader import LMap, load_yaml
from safeapply.lint.model import Finding, Severity

TASK_KEYWORDS = frozenset(str.split("""
name when register become become_user become_method become_flags become_exe loop loop_control tags
notify vars args ignore_errors changed_when failed_when until retries delay delegate_to delegate_facts
run_once no_log environment check_mode diff any_errors_fatal async poll listen collections connection
debugger ignore_unreachable module_defaults throttle timeout port remote_user block rescue always
local_action action
"""))
PLAY_KEYS = frozenset(str.split("""
hosts import_playbook include_playbook ansible.builtin.import_playbook tasks pre_tasks post_tasks
handlers roles vars vars_files vars_prompt gather_facts name become become_user strategy serial
"""))
TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers")
_IMPORTS = {"import_tasks", "include_tasks", "ansible.builtin.import_tasks", "ansible.builtin.include_tasks"}


@dataclass
class Task:
    data: LMap
    file: str
    line: int
    action: str  # the module/action key as written ("" when none found)
    args: Any  # dict of options, or a free-form string
    play_hosts: str = ""

    def key_line(self, key: str) -> int:
        return self.data.key_lines.get(key, self.line)


@dataclass
class Project:
    root: Path
    files: list[Path] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    plays: list[tuple[str, LMap]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    seen: set[Path] = field(default_factory=set)

    def display(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.root))
        except ValueError:
            return str(path)


def split_action(task: LMap) -> tuple[str, Any]:
    """The action key and its arguments, as Ansible's ModuleArgsParser sees them (simplified)."""
    for key, value in task.items():
        if key in TASK_KEYWORDS or key.startswith("with_"):
            continue
        args: Any = value
        if isinstance(task.get("args"), dict):
            base = value if isinstance(value, dict) else {"_raw_params": value} if isinstance(value, str) else {}
            args = {**base, **task["args"]}
        return key, args
    for key in ("action", "local_action"):
        if isinstance(task.get(key), str):
            head, _, rest = task[key].partition(" ")
            return head, _kv(rest)
    return "", None


def _kv(text: str) -> dict[str, str] | str:
    pairs = [p.partition("=") for p in text.split()]
    if pairs and all(sep for _, sep, _ in pairs):
        return {k: v for k, _, v in pairs}
    return text


def load_project(paths: list[Path], root: Path) -> Project:
    proj = Project(root=root)
    for path in paths:
        if not path.exists():
            proj.findings.append(Finding("missing-file", Severity.BLOCKING, str(path), 0,
                                         "file not found", "check the path of the playbook"))
            continue
        _load_playbook(proj, path)
    return proj


def _load_playbook(proj: Project, path: Path) -> None:
    shown = proj.display(path)
    loaded = load_yaml(path, shown)
    proj.files.append(path)
    proj.seen.add(path.resolve())
    proj.findings.extend(loaded.findings)
    data = loaded.data
    if loaded.findings and data is None:
        return
    if not isinstance(data, list) or not all(isinstance(p, dict) for p in data) or not data:
        proj.findings.append(Finding(
            "not-a-playbook", Severity.BLOCKING, shown, getattr(data, "line", 1) or 1,
            "not a playbook: expected a list of plays (mappings with `hosts:` or `import_playbook:`)",
            "start the file with `- hosts: ...` and put tasks under `tasks:`; a task list belongs in a role "
            "or is pulled in with import_tasks"))
        return
    for play in data:
        _load_play(proj, play, path)


def _load_play(proj: Project, play: LMap, path: Path) -> None:
    shown = proj.display(path)
    imported = next((play[k] for k in play if k.endswith("import_playbook")), None)
    if isinstance(imported, str) and "{{" not in imported:
        target = (path.parent / imported)
        if target.exists() and target.resolve() not in proj.seen:
            _load_playbook(proj, target)
        return
    if "hosts" not in play:
        proj.findings.append(Finding(
            "not-a-playbook", Severity.BLOCKING, shown, play.line,
            "a play needs `hosts:` (this looks like a task list, not a playbook)",
            "wrap the tasks in a play: `- hosts: all` followed by `tasks:`"))
        return
    hosts = str(play.get("hosts"))
    proj.plays.append((shown, play))
    for key in TASK_LISTS:
        _add_tasks(proj, play.get(key), path, hosts, depth=0)
    for role in play.get("roles") or []:
        name = role if isinstance(role, str) else (role.get("role") or role.get("name")) if isinstance(
            role, dict) else None
        if isinstance(name, str):
            _load_role(proj, name, path.parent, hosts)


def _load_role(proj: Project, name: str, base: Path, hosts: str) -> None:
    for roles_dir in (base / "roles", proj.root / "roles", base):
        role = roles_dir / name
        if (role / "tasks").is_dir() or (role / "handlers").is_dir():
            for sub in ("tasks", "handlers"):
                for f in sorted((role / sub).glob("*.y*ml")) if (role / sub).is_dir() else []:
                    _load_task_file(proj, f, hosts, depth=1)
            return


def _load_task_file(proj: Project, path: Path, hosts: str, depth: int) -> None:
    if path.resolve() in proj.seen or depth > 8:
        return
    proj.seen.add(path.resolve())
    proj.files.append(path)
    loaded = load_yaml(path, proj.display(path))
    proj.findings.extend(loaded.findings)
    _add_tasks(proj, loaded.data, path, hosts, depth)


def _add_tasks(proj: Project, items: Any, path: Path, hosts: str, depth: int) -> None:
    if not isinstance(items, list):
        return
    for item in items:
        if not isinstance(item, LMap):
            continue
        if any(k in item for k in ("block", "rescue", "always")):
            for k in ("block", "rescue", "always"):
                _add_tasks(proj, item.get(k), path, hosts, depth)
            continue
        action, args = split_action(item)
        proj.tasks.append(Task(item, proj.display(path), item.line, action, args, hosts))
        if action in _IMPORTS:
            target = args if isinstance(args, str) else (args or {}).get("file") if isinstance(args, dict) else None
            if isinstance(target, str) and "{{" not in target:
                candidate = path.parent / target
                if candidate.exists():
                    _load_task_file(proj, candidate, hosts, depth + 1)


def iter_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from iter_strings(v)
