"""Which modules ansible-lint must mock, told from the file system alone (no Ansible import).

This lets ansible-lint start at once, in parallel with our own (Ansible-importing) rules. A name is mocked
when its module file is not where Ansible would look; our unknown-module rule gives the verdict on it.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from importlib.util import find_spec
from pathlib import Path


@cache
def _builtin_modules() -> frozenset[str]:
    spec = find_spec("ansible")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    base = Path(next(iter(spec.submodule_search_locations))) / "modules"
    return frozenset(p.stem for p in base.glob("*.py"))


@cache
def _collection_roots() -> tuple[Path, ...]:
    env = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS") or ""
    roots = [Path(p) for p in env.split(os.pathsep) if p]
    roots += [Path.home() / ".ansible/collections", Path("/usr/share/ansible/collections")]
    roots += [Path(p) for p in sys.path if p.endswith("site-packages")]
    return tuple(r for r in roots if (r / "ansible_collections").is_dir())


def needs_mock(action: str) -> bool:
    parts = action.split(".")
    if len(parts) == 1 or parts[:2] in (["ansible", "builtin"], ["ansible", "legacy"]):
        return parts[-1] not in _builtin_modules()
    if len(parts) != 3:
        return True
    ns, coll, name = parts
    for root in _collection_roots():
        mods = root / "ansible_collections" / ns / coll / "plugins" / "modules"
        if (mods / f"{name}.py").exists() or (mods / name).is_dir():
            return False
    return True
