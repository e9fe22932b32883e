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

    init_plugin_loader()
    return module_loader


@cache
def collection_paths() -> tuple[Path, ...]:
    from ansible.utils.collection_loader import AnsibleCollectionConfig

    _loader()
    return tuple(Path(p) for p in AnsibleCollectionConfig.collection_paths)


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
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")  # Ansible's "Error loading plugin" noise: we report it ourselves
        ctx = _loader().find_plugin_with_context(written, check_aliases=True)
    target = (ctx.redirect_list or [written])[-1]
    collection = target.rsplit(".", 1)[0] if target.count(".") >= 2 else "ansible.builtin"
    if not ctx.resolved:
        return ModuleInfo(written, None, collection, collection_installed(collection))
    fqcn = ctx.plugin_resolved_name if "." in ctx.plugin_resolved_name else f"ansible.builtin.{target}"
    if fqcn.startswith("ansible_collections."):
        fqcn = target if target.count(".") >= 2 else f"ansible.builtin.{target}"
    options = None if fqcn.rsplit(".", 1)[-1] in FREE_FORM else _options(ctx.plugin_resolved_path, collection)
    return ModuleInfo(written, fqcn, collection, True, options)


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
