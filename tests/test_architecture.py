"""safeapply's import graph, read from the source with `ast`: where the heavy third-party libraries may be
imported, that the graph has no cycles, and that the code below the pipeline does not import it.

An import counts wherever it is written — at the top, inside a function (a lazy import is an edge too), in a
try block — except in the body of `if TYPE_CHECKING:`, which never runs (`graph(type_only=True)` counts those
too, for the rules that hold even for type hints). `from safeapply.x import y` is an edge to the module
`safeapply.x.y` when that is a module, else to `safeapply.x`. Importing `a.b.c` is an edge to `a.b.c` alone:
that Python runs the package `a.b` first is not a dependency of the importer's design.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).parents[1]
PACKAGE = "safeapply"
# The pipeline: the modules that run the stages in order. Code that runs on hosts, and the dead-man's switch,
# sit below it and must not import it, not even for type hints (then the pipeline's types would be theirs).
PIPELINE = ("safeapply.run", "safeapply.run_stages")
BELOW_PIPELINE = ("safeapply.deadman", "safeapply.target")


# ---- the graph ------------------------------------------------------------------------------------------

@cache
def modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    out = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, type_only: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under `node`; those under `if TYPE_CHECKING:` only when `type_only`."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    if isinstance(node, ast.If) and _is_type_checking(node.test) and not type_only:
        children: list[ast.AST] = [node.test, *node.orelse]
    else:
        children = list(ast.iter_child_nodes(node))
    for child in children:
        yield from _walk(child, type_only)


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The module a `from ... import` reads from, relative imports resolved."""
    if not node.level:
        return node.module or ""
    here = module.split(".") if is_package else module.split(".")[:-1]
    here = here[: len(here) - (node.level - 1)]
    return ".".join([*here, *([node.module] if node.module else [])])


def imports_in(source: str, module: str, is_package: bool, known: set[str] | dict[str, Path],
               type_only: bool = False) -> set[str]:
    """The dotted names the code of `module` imports (safeapply's modules and third-party ones alike), given
    the modules that exist (`known`): `from a import b` names `a.b` when that is a module, else `a`."""
    out: set[str] = set()
    for node in _walk(ast.parse(source), type_only):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
            continue
        base = _base(module, is_package, node)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            out.add(sub if sub in known else base)
    return out


def imports_of(module: str, type_only: bool = False) -> set[str]:
    path = modules()[module]
    return imports_in(path.read_text(), module, path.name == "__init__.py", modules(), type_only)


@cache
def graph(type_only: bool = False) -> dict[str, frozenset[str]]:
    """safeapply's modules -> the safeapply modules each imports (with type-only imports if asked)."""
    known = modules()
    return {m: frozenset(i for i in imports_of(m, type_only) if i in known and i != m) for m in known}


def importers(third_party: str) -> list[str]:
    """safeapply's modules that import `third_party` or one of its submodules."""
    return sorted(m for m in modules()
                  if any(i == third_party or i.startswith(third_party + ".") for i in imports_of(m)))


def _components(g: dict[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def cycles(g: dict[str, frozenset[str]] | None = None) -> list[tuple[str, ...]]:
    """Every elementary cycle of the import graph, once each: a tuple of modules starting at its smallest name,
    each importing the next and the last importing the first. Sorted."""
    g = graph() if g is None else g
    found: list[tuple[str, ...]] = []
    for comp in _components(g):
        members = set(comp)
        if len(comp) == 1 and comp[0] not in g[comp[0]]:
            continue
        for start in comp:  # cycles whose smallest module is `start`: walk only through larger ones
            allowed = {m for m in members if m >= start}
            path = [start]

            def walk(v: str, start: str = start, allowed: set[str] = allowed, path: list[str] = path) -> None:
                for w in sorted(g[v] & allowed):
                    if w == start:
                        found.append(tuple(path))
                    elif w not in path:
                        path.append(w)
                        walk(w)
                        path.pop()

            walk(start)
    return sorted(found)


def _show(cs: list[tuple[str, ...]]) -> str:
    return "\n".join(" -> ".join((*c, c[0])) for c in cs)


def _in(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _reachable(start: str, g: dict[str, frozenset[str]]) -> dict[str, str]:
    """Modules `start` imports directly or through others -> the module that imports each (to show a path)."""
    seen: dict[str, str] = {}
    todo = [start]
    while todo:
        v = todo.pop()
        for w in sorted(g[v]):
            if w not in seen and w != start:
                seen[w] = v
                todo.append(w)
    return seen


def _chain(start: str, end: str, via: dict[str, str]) -> str:
    path = [end]
    while path[-1] != start:
        path.append(via[path[-1]])
    return " -> ".join(reversed(path))


# ---- the finder itself ----------------------------------------------------------------------------------

def test_cycle_finder_on_a_known_graph() -> None:
    g = {k: frozenset(v) for k, v in {
        "a": {"b"}, "b": {"c", "a"}, "c": {"a", "d"}, "d": set(), "e": {"e"}, "f": {"g"}, "g": set(),
    }.items()}
    assert cycles(g) == [("a", "b"), ("a", "b", "c"), ("e",)]
    assert cycles({k: frozenset() for k in g}) == []


SOURCE = """
import json, safeapply.errors
from typing import TYPE_CHECKING
import typing
from safeapply.pkg import sub, helper
from . import sibling
from .sibling import thing
from .. import top

if TYPE_CHECKING:
    from safeapply.hints import Hint
else:
    from safeapply.runtime import Fallback
if typing.TYPE_CHECKING:
    import safeapply.hints2

def lazy():
    from safeapply.lazy import later
    try:
        import paramiko.client
    except ImportError:
        pass

class K:
    def method(self):
        import safeapply.inner.deep as deep
"""


def test_the_graph_reads_every_kind_of_import() -> None:
    """Lazy imports count, TYPE_CHECKING blocks do not (their `else` does), `from pkg import submodule` names
    the submodule, relative imports resolve from the module's package."""
    known = {"safeapply.pkg.sub", "safeapply.a.sibling", "safeapply.a.b"}
    runtime = {"json", "safeapply.errors", "typing", "safeapply.pkg.sub", "safeapply.pkg", "safeapply.a.sibling",
               "safeapply", "safeapply.runtime", "safeapply.lazy", "paramiko.client", "safeapply.inner.deep"}
    assert imports_in(SOURCE, "safeapply.a.b", False, known) == runtime
    assert imports_in(SOURCE, "safeapply.a.b", False, known, type_only=True) == {
        *runtime, "safeapply.hints", "safeapply.hints2"}
    # the same code as a package's __init__ (safeapply/a/b/__init__.py): `.` is the package itself
    assert imports_in("from . import sibling\nfrom .. import x\n", "safeapply.a.b", True, known) == {
        "safeapply.a.b", "safeapply.a"}
    assert "safeapply.cli.misc" in graph()["safeapply.cli.commands"]  # `from safeapply.cli import misc`, real


# ---- the rules ------------------------------------------------------------------------------------------

def test_paramiko_only_in_the_transport_package() -> None:
    users = importers("paramiko")
    assert "safeapply.transport.ssh" in users
    assert [m for m in users if not _in(m, ("safeapply.transport",))] == []


def test_ansible_runner_only_in_apply() -> None:
    assert importers("ansible_runner") == ["safeapply.apply"]


def test_no_cycle_through_the_sandbox_package() -> None:
    assert _show([c for c in cycles() if any(_in(m, ("safeapply.sandbox",)) for m in c)]) == ""


def test_no_cycles() -> None:
    assert _show(cycles()) == ""


def test_no_cycles_even_through_type_hints() -> None:
    """A type-only cycle (run_stages importing RunOptions back from run) is what the issue found first."""
    assert _show(cycles(graph(type_only=True))) == ""


def _pipeline_imports(g: dict[str, frozenset[str]]) -> str:
    """Each way a module below the pipeline reaches it, directly or through other modules."""
    found = []
    for m in sorted(m for m in modules() if _in(m, BELOW_PIPELINE)):
        via = _reachable(m, g)
        found += [_chain(m, p, via) for p in sorted(via) if _in(p, PIPELINE)]
    return "\n".join(found)


def test_nothing_below_the_pipeline_imports_it() -> None:
    """Not directly, not through another module, not for type hints (issue 16: `deadman/guard.py` importing
    `HostRun` from `run.py` for its hints was why deadman/ sat above the pipeline)."""
    assert _pipeline_imports(graph(type_only=True)) == ""
