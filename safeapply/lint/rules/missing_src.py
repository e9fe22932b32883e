"""missing-src: a `src:` file that is not on the controller where Ansible will look for it.

copy, template, script, unarchive and assemble read `src:` on the controller. It is searched the way Ansible
searches it (its own `DataLoader.path_dwim_relative_stack`): the role's `files/` or `templates/`, the task
file's directory, then the playbook directory and its `files/`/`templates/`. The task fails when it runs,
after the tasks before it changed the host. Blocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from safeapply.lint.model import Finding, Severity
from safeapply.lint.project import Task
from safeapply.lint.rules.base import Context, args_of, has_jinja, truthy

ID = "missing-src"
SEVERITY = Severity.BLOCKING
DOC = "copy/template/script/unarchive src: names a file that is not in the role's files/templates or beside."

SEARCH_DIR = {"copy": "files", "template": "templates", "script": "files", "unarchive": "files",
              "assemble": "files"}


def search_paths(task: Task, root: Path) -> tuple[list[str], Path]:
    """Ansible's search path for the task (its role, then the task file's directory) and the play's basedir."""
    here = (root / task.file).parent
    scope = task.scope
    paths = [str(scope.role)] if scope and scope.role else []
    if str(here) not in paths:
        paths.append(str(here))
    return paths, (scope.play_dir if scope else here)


def find(task: Task, root: Path, dirname: str, src: str) -> bool:
    from ansible.errors import AnsibleFileNotFound
    from ansible.parsing.dataloader import DataLoader

    paths, basedir = search_paths(task, root)
    loader = DataLoader()
    loader.set_basedir(str(basedir))
    try:
        loader.path_dwim_relative_stack(paths, dirname, src)
    except AnsibleFileNotFound:
        return False
    return True


def check(ctx: Context) -> Iterator[Finding]:
    for task, info in ctx.tasks(*SEARCH_DIR):
        args = args_of(task)
        src = args.get("src")
        if not isinstance(src, str) or not src or has_jinja(src) or "://" in src or truthy(args.get("remote_src")):
            continue
        if info.short == "unarchive" and str(args.get("copy", "")).lower() in ("no", "false"):
            continue
        if task.data.get("delegate_to") or any(k.startswith("with_") for k in task.data):
            continue
        dirname = SEARCH_DIR[info.short]
        if not find(task, ctx.project.root, dirname, src):
            line = getattr(task.args, "key_lines", {}).get("src", task.line)
            where = f"{dirname}/ of the role or beside the playbook" if task.scope and task.scope.role else \
                f"{dirname}/ beside the playbook or the task file"
            yield Finding(ID, SEVERITY, task.file, line,
                          f"`src: {src}` does not exist on the controller: Ansible looks in {where}",
                          f"create {dirname}/{src.lstrip('/')} (or fix the name), or set `remote_src: true` if "
                          "the file is on the host", task_line=task.line)
