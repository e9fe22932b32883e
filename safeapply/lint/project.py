"""Walk playbooks into tasks: plays, blocks, handlers, roles and statically imported task files."""

from __future__ import annotations

import os
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
_ROLE_IMPORTS = {"import_role", "include_role", "ansible.builtin.import_role", "ansible.builtin.include_role"}
TASK_DIRS = ("tasks", "handlers")  # a list in such a directory is a task file, as ansible-lint reads it


@dataclass(frozen=True)
class Scope:
    """What encloses a task: its play's directory, its role, and the conditions of enclosing blocks/imports."""

    play_dir: Path
    role: Path | None = None  # the role directory as named in the project (symlinks not resolved)
    conditions: tuple[str, ...] = ()
    hosts: str = ""
    remote_user: str = ""  # the play's (or block's) remote_user, when written

    def inside(self, item: Any) -> Scope:
        when = item.get("when") if isinstance(item, dict) else None
        more = tuple(str(c) for c in (when if isinstance(when, list) else [when]) if isinstance(c, str | bool))
        user = item.get("remote_user") if isinstance(item, dict) else None
        return Scope(self.play_dir, self.role, self.conditions + more, self.hosts,
                     str(user) if isinstance(user, str) else self.remote_user)


@dataclass
class Task:
    data: LMap
    file: str
    line: int
    action: str  # the module/action key as written ("" when none found)
    args: Any  # dict of options, or a free-form string
    play_hosts: str = ""
    scope: Scope | None = None

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
    roles: list[Path] = field(default_factory=list)  # every role directory the plays use
    vars_files: list[tuple[Path, Any]] = field(default_factory=list)  # (playbook directory, a play's vars_files)

    def display(self, path: Path) -> str:
        for candidate in (Path(os.path.abspath(path)), path.resolve()):  # a symlinked role keeps its name
            try:
                return str(candidate.relative_to(self.root.resolve()))
            except ValueError:
                try:
                    return str(candidate.relative_to(self.root))
                except ValueError:
                    continue
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
    kind = file_kind(path)
    if kind == "vars":
        return
    plays = isinstance(data, list) and any(isinstance(p, dict) and ("hosts" in p or any(
        k.endswith("import_playbook") for k in p)) for p in data)
    if kind == "tasks" and isinstance(data, list) and not plays:
        role = path.parent.parent if path.parent.name in TASK_DIRS else None
        if role is not None and role not in proj.roles:
            proj.roles.append(role)
        _add_tasks(proj, data, path, "", 0, Scope(path.parent, role))
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


def file_kind(path: Path) -> str:
    """playbook, tasks or vars: by the directory a file sits in, as ansible-lint's kinds tell them."""
    parts = Path(os.path.abspath(path)).parts[:-1]
    if any(p in TASK_DIRS for p in parts[-3:]):
        return "tasks"
    if parts and parts[-1] in ("vars", "defaults", "group_vars", "host_vars", "meta"):
        return "vars"
    return "playbook"


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
    if play.get("vars_files"):
        proj.vars_files.append((path.parent, play["vars_files"]))
    scope = Scope(path.parent, None, (), hosts).inside(play)
    for key in TASK_LISTS:
        _add_tasks(proj, play.get(key), path, hosts, 0, scope)
    for role in play.get("roles") or []:
        name = role if isinstance(role, str) else (role.get("role") or role.get("name")) if isinstance(
            role, dict) else None
        if isinstance(name, str):
            _load_role(proj, name, path.parent, hosts, 1, scope.inside(role))


def find_role(proj: Project, name: str, base: Path) -> Path | None:
    """A role by name where Ansible looks: beside the playbook, the project's roles/, `roles_path` (ansible.cfg
    found as the CLI finds it, $ANSIBLE_ROLES_PATH), and collections for `ns.coll.role` (links followed)."""
    dirs = [base / "roles", proj.root / "roles", base, *(Path(p) for p in roles_path())]
    for roles_dir in dirs:
        role = roles_dir / name
        if _is_role(role):
            return role
    collection_role = _collection_role(name) if name.count(".") == 2 else None
    return collection_role if collection_role is not None and _is_role(collection_role) else None


def _is_role(path: Path) -> bool:
    return any((path / sub).is_dir() for sub in ("tasks", "handlers", "defaults", "vars", "meta"))


def roles_path() -> list[str]:
    """Ansible's DEFAULT_ROLES_PATH: ansible.cfg's `roles_path` (from the current directory, as the CLI reads
    it), $ANSIBLE_ROLES_PATH, else Ansible's defaults."""
    from ansible import constants as C

    return [str(p) for p in C.DEFAULT_ROLES_PATH or []]


def _collection_role(name: str) -> Path | None:
    """`ns.coll.role` in an installed collection, by Ansible's own collection finder (a private name, pinned
    by tests/test_lint_project.py)."""
    from ansible.utils.collection_loader._collection_finder import _get_collection_role_path

    from safeapply.lint.modules import collection_paths

    collection_paths()  # initialises Ansible's plugin loader (and so the collection finder)
    found = _get_collection_role_path(name)
    return Path(found[1]) if found else None


def _load_role(proj: Project, name: str, base: Path, hosts: str, depth: int, scope: Scope) -> None:
    role = find_role(proj, name, base)
    if role is None or depth > 8:
        return
    if role not in proj.roles:
        proj.roles.append(role)
    inner = Scope(scope.play_dir, role, scope.conditions, hosts, scope.remote_user)
    meta = role / "meta" / "main.yml"
    if meta.is_file():  # dependencies run first, in the same play
        deps = load_yaml(meta, proj.display(meta)).data
        for dep in (deps.get("dependencies") or []) if isinstance(deps, dict) else []:
            dep_name = dep if isinstance(dep, str) else dep.get("role") or dep.get("name") if isinstance(
                dep, dict) else None
            if isinstance(dep_name, str) and "{{" not in dep_name:
                _load_role(proj, dep_name, role.parent, hosts, depth + 1, scope)
    for sub in ("tasks", "handlers"):
        files = sorted((role / sub).glob("*.y*ml")) if (role / sub).is_dir() else []
        for f in sorted(files, key=lambda f: f.stem != "main"):  # main first: its imports carry their `when`
            _load_task_file(proj, f, hosts, depth, inner)


def _load_task_file(proj: Project, path: Path, hosts: str, depth: int, scope: Scope) -> None:
    if path.resolve() in proj.seen or depth > 8:
        return
    proj.seen.add(path.resolve())
    proj.files.append(path)
    loaded = load_yaml(path, proj.display(path))
    proj.findings.extend(loaded.findings)
    _add_tasks(proj, loaded.data, path, hosts, depth, scope)


def _add_tasks(proj: Project, items: Any, path: Path, hosts: str, depth: int, scope: Scope) -> None:
    if not isinstance(items, list):
        return
    for item in items:
        if not isinstance(item, LMap):
            continue
        if any(k in item for k in ("block", "rescue", "always")):
            inner = scope.inside(item)
            for k in ("block", "rescue", "always"):
                _add_tasks(proj, item.get(k), path, hosts, depth, inner)
            continue
        action, args = split_action(item)
        proj.tasks.append(Task(item, proj.display(path), item.line, action, args, hosts, scope.inside(item)))
        target = args if isinstance(args, str) else (args or {}).get("file") if isinstance(args, dict) else None
        if action in _IMPORTS and isinstance(target, str) and "{{" not in target:
            candidate = path.parent / target
            if not candidate.exists() and scope.role is not None:
                candidate = scope.role / "tasks" / target
            if candidate.exists():
                _load_task_file(proj, candidate, hosts, depth + 1, scope.inside(item))
        elif action in _ROLE_IMPORTS and isinstance(args, dict) and isinstance(args.get("name"), str) \
                and "{{" not in args["name"]:
            _load_role(proj, args["name"], scope.play_dir, hosts, depth + 1, scope.inside(item))


def iter_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from iter_strings(v)
