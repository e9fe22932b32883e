"""undefined-variable: a template uses a variable that nothing in the project defines.

Sources counted as defining a name: any mapping key in any YAML file of the project (vars, vars_files,
group_vars, host_vars, role defaults, set_fact, include_vars files), `register:`, loop variables, INI
inventory `name=value` pairs, Ansible's magic variables and facts, and names the caller passes (the run
pipeline passes the inventory's variables), and the files a play's `vars_files:` names wherever they are (found
relative to the playbook's directory, as Ansible finds them; a name no file answers for — templated with facts,
say — turns this rule's findings into warnings). Roles are read through symlinks. A name guarded by `is defined` or
`default()` (in the template, or in a `when:` of the task or of an enclosing block, import or role) is not
reported: Ansible skips the task or takes the default. Only a name defined nowhere blocks.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from safeapply.errors import VaultError
from safeapply.lint.loader import load_yaml
from safeapply.lint.model import Finding, Severity
from safeapply.lint.rules.base import Context
from safeapply.lint.templates import literal_vars, parse, render_literal, templates, undeclared

if TYPE_CHECKING:
    from safeapply.lint.project import Project

ID = "undefined-variable"
SEVERITY = Severity.BLOCKING
DOC = "A template refers to a variable defined nowhere in the playbook, its roles, vars files or inventory."

MAGIC = frozenset(str.split("""
hostvars groups group_names inventory_hostname inventory_hostname_short inventory_dir inventory_file
playbook_dir play_hosts ansible_play_hosts ansible_play_batch ansible_play_hosts_all role_path role_name
role_names omit item ansible_loop ansible_loop_var ansible_index_var ansible_facts ansible_version
ansible_check_mode ansible_diff_mode ansible_run_tags ansible_skip_tags ansible_limit
ansible_parent_role_names ansible_parent_role_paths ansible_play_name ansible_play_role_names
ansible_role_names ansible_search_path ansible_config_file ansible_collection_name
ansible_dependent_role_names ansible_verbosity environment lookup query q now undef range dict lipsum
cycler joiner namespace true false none True False None vars ansible_forks ansible_inventory_sources
ansible_role_name ansible_host ansible_user ansible_port
"""))
_INI_VAR = re.compile(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=")
_TEMPLATED = re.compile(r"\{\{.*?\}\}|\{%.*?%\}")
_SKIP_DIRS = {".git", ".venv", "node_modules", ".cache", ".tox", "__pycache__"}


def _keys(value: Any, out: set[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(str(k))
            if k in ("register", "loop_var", "index_var") and isinstance(v, str):
                out.add(v)
            _keys(v, out)
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, str) and v.isidentifier():
                out.add(v)  # vars_prompt names, set_fact cacheable lists...
            _keys(v, out)


def _files(roots: list[Path], limit: int) -> Iterator[Path]:
    """Files under the roots, following symlinked directories (a role linked into roles/) once each."""
    seen: set[Path] = set()
    count = 0
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            real = Path(dirpath).resolve()
            if real in seen:
                dirnames[:] = []
                continue
            seen.add(real)
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
            for name in sorted(filenames):
                count += 1
                if count > limit:
                    return
                yield Path(dirpath) / name


def defined_names(root: Path, roles: list[Path] | None = None, limit: int = 3000) -> set[str]:
    names: set[str] = set()
    for path in _files([root, *(roles or [])], limit):
        if not path.is_file():
            continue
        if path.suffix in (".yml", ".yaml", ".json"):
            _vars_file_names(path, names)
        elif path.suffix in ("", ".ini", ".cfg", ".hosts", ".inventory") and path.stat().st_size < 1_000_000:
            with contextlib.suppress(OSError):
                names.update(_INI_VAR.findall(path.read_text(errors="replace")))
    return names


def _vars_file_names(path: Path, names: set[str]) -> None:
    _keys(_vaulted(path) if _is_vaulted(path) else load_yaml(path, str(path)).data, names)


def vars_files(project: Project) -> tuple[list[Path], list[str]]:
    """The files the plays' `vars_files:` name, found as Ansible finds them: relative to the playbook's directory
    (its loader's `path_dwim`), `~` expanded; a list entry is "the first that exists" (each counts here). A name
    templated with literal vars is rendered; one templated with facts or host vars (`{{ ansible_os_family }}`)
    counts every file it could name. Second: templated entries no file answers for (names may come from them)."""
    from ansible.parsing.dataloader import DataLoader

    if not project.vars_files:
        return [], []
    literal = literal_vars(project)
    found: list[Path] = []
    unreadable: list[str] = []
    for play_dir, entries in project.vars_files:
        loader = DataLoader()
        loader.set_basedir(str(play_dir))
        for entry in entries if isinstance(entries, list) else [entries]:
            candidates = [str(c) for c in (entry if isinstance(entry, list) else [entry]) if isinstance(c, str)]
            hits = [f for c in candidates for f in _candidates(loader, c, {**literal, "playbook_dir": str(play_dir)})]
            found += hits
            if not hits:  # a name with a template lint cannot render may name any file; a plain one is missing
                unreadable += [c for c in candidates if _TEMPLATED.search(c)][:1]
    return found, unreadable


def _candidates(loader: Any, name: str, literal: dict[str, str]) -> list[Path]:
    rendered = render_literal(name, literal)
    if rendered is not None:
        path = Path(loader.path_dwim(rendered))
        return [path] if path.is_file() else []
    pattern = loader.path_dwim(_TEMPLATED.sub("*", name))
    if not Path(pattern).name.strip("*"):  # `{{ x }}`, `vars/{{ x }}`: any file, the playbook too: cannot tell
        return []
    return [Path(p) for p in sorted(glob.glob(pattern)) if Path(p).is_file()]


def _is_vaulted(path: Path) -> bool:
    with contextlib.suppress(OSError), path.open("rb") as f:
        return f.read(14) == b"$ANSIBLE_VAULT"
    return False


def _vaulted(path: Path) -> Any:
    """A vault-encrypted vars file, decrypted with the invocation's vault secrets (as ansible-playbook would).
    A password that does not decrypt it is a VaultError (exit 19, as in run and plan); with no vault password at
    all (a lint without the secrets) or a file that does not parse, None: its names count as unknown."""
    from safeapply.ansible_context import get
    from safeapply.ansible_errors import vault_errors, vault_passwords_given

    try:
        with vault_errors():
            return get().loader.load_from_file(str(path))
    except VaultError:
        if vault_passwords_given():
            raise
        return None
    except Exception:  # Ansible's parser error: the names stay unknown here
        return None


def _default_inventory() -> list[Path]:
    """ansible.cfg's `inventory` (its group_vars and host_vars): in the usual layout it is not under the
    playbook's folder, and `safeapply lint` has no -i."""
    from ansible import constants as C

    out: list[Path] = []
    for src in map(Path, C.DEFAULT_HOST_LIST or []):
        out += [src] if src.is_dir() else [d for d in (src.parent / "group_vars", src.parent / "host_vars")
                                            if src.exists() and d.is_dir()]
    return out


def _is_known(name: str, known: set[str]) -> bool:
    return name in known or name in MAGIC or name.startswith(("ansible_", "facter_", "ohai_"))


def check(ctx: Context) -> Iterator[Finding]:
    known = defined_names(ctx.project.root, [*ctx.project.roles, *_default_inventory()]) | set(ctx.known_vars)
    found, unreadable = vars_files(ctx.project)
    for path in found:
        _vars_file_names(path, known)
    # a vars file lint cannot name may define anything: not a block (Ansible says it at run time if it is missing)
    severity, maybe = (Severity.WARNING, f" (unless vars_files `{unreadable[0]}` defines it: lint cannot tell "
                       "which file that is)") if unreadable else (SEVERITY, "")
    reported: set[tuple[str, int, str]] = set()
    for tpl in templates(ctx.project):
        try:
            names = undeclared(parse(tpl.text))
        except jinja2.TemplateSyntaxError:
            continue  # jinja-syntax reports it
        for name in sorted(names - set(tpl.loop_vars) - tpl.guarded):
            if _is_known(name, known) or (tpl.file, tpl.line, name) in reported:
                continue
            reported.add((tpl.file, tpl.line, name))
            yield Finding(ID, severity, tpl.file, tpl.line,
                          f"variable `{name}` is not defined anywhere in the project{maybe}",
                          f"define `{name}` in vars/group_vars/defaults, or use `{name} | default(...)`")
