"""YAML with line numbers: mappings and lists remember where they start, duplicate keys are recorded.

Plain PyYAML (the C loader when present) is enough here; broken input becomes a finding, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from safeapply.lint.model import Finding, Severity

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_BYTES = 4 << 20  # the largest YAML file read: real playbooks and vars files are kilobytes
MAX_NODES = 1_000_000  # the most values a document may expand to through aliases (a "billion laughs" has 10^9)


class LMap(dict[str, Any]):
    line: int = 0
    key_lines: dict[str, int]


class LSeq(list[Any]):
    line: int = 0


@dataclass
class Loaded:
    path: Path
    data: Any = None
    findings: list[Finding] = field(default_factory=list)
    text: str = ""


class _LineLoader(_Base):  # type: ignore[misc]
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[str, int]] = []


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> LMap:
    out = LMap()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        key = key if isinstance(key, str) else str(key)
        line = key_node.start_mark.line + 1
        if key in out.key_lines:
            loader.duplicates.append((key, line))
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> LSeq:
    out = LSeq(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    return out


def _construct_vault(loader: _LineLoader, node: yaml.Node) -> str:
    return "$ANSIBLE_VAULT;" + str(loader.construct_scalar(node))


def _construct_unsafe(loader: _LineLoader, node: yaml.Node) -> Any:
    return loader.construct_scalar(node)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)
_LineLoader.add_constructor("!vault", _construct_vault)
_LineLoader.add_constructor("!unsafe", _construct_unsafe)


def _problem_mark(exc: yaml.YAMLError) -> tuple[int, int]:
    """Line and column (1-based) where the parser gave up."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return (int(mark.line) + 1, int(mark.column) + 1) if mark is not None else (1, 0)


def _expanded_size(root: yaml.Node) -> int:
    """How many values the document has once every alias is expanded (shared nodes counted per use)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # a recursive alias counts once
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else node.value if isinstance(node, yaml.SequenceNode) else [])
        sizes[id(node)] = min(1 + sum(size(c) for c in children), MAX_NODES + 1)
        return sizes[id(node)]

    return size(root)


def load_yaml(path: Path, display: str) -> Loaded:
    """Load one YAML file; invalid YAML and duplicate keys become blocking findings."""
    out = Loaded(path)
    if path.is_file() and path.stat().st_size > MAX_BYTES:
        out.findings.append(Finding("yaml-invalid", Severity.BLOCKING, display, 0,
                                    f"{path.stat().st_size:,} bytes: larger than any playbook or vars file "
                                    f"safeapply reads ({MAX_BYTES:,})", "split it, or keep data out of YAML"))
        return out
    if path.exists() and not path.is_file():  # a FIFO or a device: reading it would block forever
        out.findings.append(Finding("missing-file", Severity.BLOCKING, display, 0, "not a regular file",
                                    "point it at a YAML file"))
        return out
    try:
        out.text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        out.findings.append(Finding("missing-file", Severity.BLOCKING, display, 0,
                                    f"cannot read the file: {e.__class__.__name__}: {e}",
                                    "check the path and its permissions"))
        return out
    loader = _LineLoader(out.text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node) > MAX_NODES:
            out.findings.append(Finding("yaml-invalid", Severity.BLOCKING, display, node.start_mark.line + 1,
                                        f"its aliases expand to more than {MAX_NODES:,} values: "
                                        "a YAML bomb, or data that is not a playbook",
                                        "write the values out instead of nesting aliases"))
            return out
        out.data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        problem = str(getattr(e, "problem", None) or e).strip()
        line, column = _problem_mark(e)
        at = f" (line {line}, column {column})" if column else ""
        out.findings.append(Finding("yaml-invalid", Severity.BLOCKING, display, line,
                                    f"invalid YAML{at}: {problem}",
                                    "fix the indentation/quoting at this line (a value with ': ' or "
                                    "starting with '{{' must be quoted)"))
    finally:
        loader.dispose()
    for key, line in loader.duplicates:
        out.findings.append(Finding("duplicate-key", Severity.BLOCKING, display, line,
                                    f"duplicate key {key!r}: YAML keeps only the last value",
                                    f"remove or merge the repeated {key!r}"))
    return out
