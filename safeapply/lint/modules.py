"""The installed modules and their argument specs, through Ansible's own plugin loader and doc parser.

Imported only on a cache miss: importing Ansible costs more than the whole cached lint may take.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

# Modules whose arguments are free-form or arbitrary keys: their options cannot be checked by name.
FREE_FORM = frozenset(str.split("""
command shell raw script set_fact include_vars add_host group_by meta import_tasks include_tasks
import_playbook win_shell win_command
"""))


@dataclass(frozen=True)
class ModuleInfo:
    written: str
    fqcn: str | None  # resolved (after redirects) name, None when unknown
    collection: str  # the collection the name points to ("" when it cannot be told)
    installed: bool  # is that collection installed here
    options: dict[str, dict[str, Any]] | None = None  # None: cannot validate (free-form or no docs)
    removed: str = ""  # Ansible's own message when the name was removed (a tombstone in its routing)
    passthrough: tuple[str, ...] = ()  # backends an action plugin hands unknown options to (package, service)

    @property
    def short(self) -> str:
        return (self.fqcn or self.written).rsplit(".", 1)[-1]


def _quiet_ansible() -> None:
    os.environ.setdefault("ANSIBLE_DEPRECATION_WARNINGS", "false")
    os.environ.setdefault("ANSIBLE_LOCALHOST_WARNING", "false")
    os.environ.setdefault("ANSIBLE_DEVEL_WARNING", "false")


@cache
def _loader() -> Any:
    _quiet_ansible()
    from ansible.plugins.loader import init_plugin_loader, module_loader
    from ansible.utils.collection_loader import AnsibleCollectionConfig

    if not AnsibleCollectionConfig.collection_finder:  # intent.load may have set it up already
        init_plugin_loader()
    return module_loader


@cache
def collection_paths() -> tuple[Path, ...]:
    from ansible.utils.collection_loader import AnsibleCollectionConfig

    _loader()
    return tuple(Path(p) for p in AnsibleCollectionConfig.collection_paths)


_PLUGIN_DIRS = {"library": "module_loader", "action_plugins": "action_loader", "filter_plugins": "filter_loader",
                "test_plugins": "test_loader"}
_added: set[str] = set()


def add_project_plugins(bases: list[Path]) -> None:
    """Plugins a project ships beside its playbooks or in its roles (library/, filter_plugins/...): Ansible
    loads them for the play, so lint must know them too."""
    import ansible.plugins.loader as loaders

    _loader()
    new = False
    for base in bases:
        for sub, name in _PLUGIN_DIRS.items():
            d = base / sub
            if d.is_dir() and str(d.resolve()) not in _added:
                _added.add(str(d.resolve()))
                getattr(loaders, name).add_directory(str(d.resolve()))
                new = True
    if new:
        for cached in (resolve, jinja_plugin, jinja_plugin_names, known_modules):
            cached.cache_clear()


def collection_installed(name: str) -> bool:
    if name in ("ansible.builtin", "ansible.legacy", ""):
        return True
    ns, _, coll = name.partition(".")
    return any((p / "ansible_collections" / ns / coll).is_dir() for p in collection_paths())


@cache
def known_modules() -> tuple[str, ...]:
    """Short builtin names plus the FQCN of every module of every installed collection."""
    import ansible

    base = Path(ansible.__file__).parent / "modules"
    names = {p.stem for p in base.glob("*.py") if not p.stem.startswith("_")}
    names |= {f"ansible.builtin.{n}" for n in list(names)}
    for root in collection_paths():
        for mod in (root / "ansible_collections").glob("*/*/plugins/modules/*.py"):
            coll = mod.parents[2]
            names.add(f"{coll.parent.name}.{coll.name}.{mod.stem}")
    return tuple(sorted(names))


@cache
def resolve(written: str) -> ModuleInfo:
    """The module a task name runs, as ansible-playbook finds it: module routing, then action routing.

    `yum` has no module in ansible-core 2.19 but its action is redirected to `dnf`; a tombstoned name
    (`include`) is reported with Ansible's own removal message.
    """
    from ansible.errors import AnsiblePluginRemovedError
    from ansible.plugins.loader import action_loader

    try:
        ctx = _find(_loader(), written)
    except AnsiblePluginRemovedError as e:
        return ModuleInfo(written, None, "ansible.builtin", True, removed=_removed_text(e))
    if not ctx.resolved:
        try:
            act = _find(action_loader, written)
        except AnsiblePluginRemovedError as e:
            return ModuleInfo(written, None, "ansible.builtin", True, removed=_removed_text(e))
        if act.resolved and act.redirect_list and act.redirect_list[-1] != written:
            ctx = _find(_loader(), act.redirect_list[-1])  # the action runs the module it redirects to
    target = (ctx.redirect_list or [written])[-1]
    collection = target.rsplit(".", 1)[0] if target.count(".") >= 2 else "ansible.builtin"
    if not ctx.resolved:
        return ModuleInfo(written, None, collection, collection_installed(collection))
    import ansible

    ours = str(ctx.plugin_resolved_path or "").startswith(str(Path(ansible.__file__).parent))
    short_ns = "ansible.builtin" if ours else "ansible.legacy"  # ansible.legacy: a project's own library/
    fqcn = ctx.plugin_resolved_name if "." in ctx.plugin_resolved_name else f"{short_ns}.{target}"
    if fqcn.startswith("ansible_collections."):
        fqcn = target if target.count(".") >= 2 else f"ansible.builtin.{target}"
    short = fqcn.rsplit(".", 1)[-1]
    options = None if short in FREE_FORM else _options(ctx.plugin_resolved_path, collection)
    return ModuleInfo(written, fqcn, collection, True, options, passthrough=_backends(fqcn))


def _find(loader: Any, name: str) -> Any:
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")  # Ansible's "Error loading plugin" noise: we report it ourselves
        return loader.find_plugin_with_context(name, check_aliases=True)


def _removed_text(e: Exception) -> str:
    return " ".join(str(getattr(e, "message", None) or e).split())


def _backends(fqcn: str) -> tuple[str, ...]:
    """Modules the action plugin of `package`/`service` hands the task's arguments to, per Ansible itself:
    package -> the package manager fact's modules (apt, dnf, ...), service -> its service manager modules."""
    if fqcn == "ansible.builtin.package":
        from ansible.plugins.action.package import ActionModule as PackageAction

        return tuple(sorted(PackageAction.BUILTIN_PKG_MGR_MODULES))
    if fqcn == "ansible.builtin.service":
        from ansible.plugins.action.service import ActionModule as ServiceAction

        return tuple(sorted(set(ServiceAction.BUILTIN_SVC_MGR_MODULES) - {"service"}))
    return ()


def accepted_options(info: ModuleInfo, use: str = "") -> dict[str, dict[str, Any]] | None:
    """Options a task may pass: the module's own, plus those of the backends its action passes them to
    (`use:` names one backend; otherwise any backend the host may have). None: cannot be checked."""
    if info.options is None:
        return None
    merged = dict(info.options)
    for backend in ([use] if use and use != "auto" else list(info.passthrough)):
        extra = resolve(backend).options if backend else None
        if extra is None and info.passthrough:
            return None  # a backend whose options cannot be read: do not guess
        for name, spec in (extra or {}).items():
            merged.setdefault(name, spec)
    return merged


def _options(path: str, collection: str) -> dict[str, dict[str, Any]] | None:
    from ansible.plugins.loader import fragment_loader
    from ansible.utils.plugin_docs import get_docstring

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            doc = get_docstring(path, fragment_loader, collection_name=collection)[0]
    except Exception:  # a module with broken docs cannot be validated; that is not the user's fault
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("options"), dict):
        return None if not isinstance(doc, dict) else {}
    return {str(k): (v if isinstance(v, dict) else {}) for k, v in doc["options"].items()}


def closest(word: str, candidates: list[str] | tuple[str, ...], n: int = 3) -> list[str]:
    """Closest valid names: a candidate the word starts or ends with ranks first (memory_limit -> memory)."""
    word_l = word.lower()
    affix = [c for c in candidates if c and (word_l.startswith(c.lower() + "_") or
                                             c.lower().startswith(word_l) or word_l.endswith("_" + c.lower()))]
    affix.sort(key=lambda c: -difflib.SequenceMatcher(None, word_l, c.lower()).ratio())
    rest = difflib.get_close_matches(word, [c for c in candidates if c not in affix], n=n, cutoff=0.6)
    return (affix + rest)[:n]


def _jinja_builtins(kind: str) -> frozenset[str]:
    import jinja2

    env = jinja2.Environment()
    return frozenset(env.filters if kind == "filter" else env.tests)


@cache
def jinja_plugin(kind: str, name: str) -> bool:
    """Does Ansible's filter (kind "filter") or test ("test") loader find this name, or Jinja's builtins?"""
    if "." not in name and name in _jinja_builtins(kind):
        return True
    from ansible.plugins.loader import filter_loader, test_loader

    _loader()
    loader = filter_loader if kind == "filter" else test_loader
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            return loader.get(name) is not None
    except Exception:  # a collection without that plugin type, a removed plugin: not found
        return False


@cache
def jinja_plugin_elsewhere(kind: str, name: str) -> tuple[str, ...]:
    """FQCNs of installed collections' filters/tests with this short name (where a removed one went)."""
    short = name.rsplit(".", 1)[-1]
    found = []
    for root in collection_paths():
        for coll in sorted((root / "ansible_collections").glob("*/*")):
            d = coll / "plugins" / kind
            fqcn = f"{coll.parent.name}.{coll.name}.{short}"
            if fqcn != name and any((d / f"{short}{ext}").is_file() for ext in (".py", ".yml", ".yaml")) \
                    and jinja_plugin(kind, fqcn):
                found.append(fqcn)
    return tuple(dict.fromkeys(found))


@cache
def jinja_plugin_names(kind: str) -> tuple[str, ...]:
    """Short names of builtin filters or tests (Jinja's and ansible.builtin's), for suggestions."""
    from ansible.plugins.loader import filter_loader, test_loader

    _loader()
    names = set(_jinja_builtins(kind))
    loader = filter_loader if kind == "filter" else test_loader
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        for plugin in loader.all():
            names.add(str(getattr(plugin, "ansible_name", "")).rsplit(".", 1)[-1])
    return tuple(sorted(n for n in names if n))
