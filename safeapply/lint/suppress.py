"""What the project says about findings: `# noqa: RULE` on the line, .ansible-lint's `skip_list` and
`warn_list` (the same ids ansible-lint uses; safeapply's rules are listed in the README with theirs), and
the findings a user accepts on purpose with `--accept RULE[:FILE:LINE]`.

A warning is silenced by `noqa` or `skip_list`. A blocking finding (the run would fail or do harm) is not:
only an explicit acceptance lets it through, and the report keeps it under `accepted` (the run record too).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from safeapply.errors import UsageError
from safeapply.lint.external import find_config
from safeapply.lint.model import Finding, LintReport, Severity

_NOQA = re.compile(r"#\s*noqa:\s*([\w\-\[\], ]+)", re.I)
_ACCEPT_HINT = "a blocking finding is let through only with --accept {rule}:{where}"


def parse_accept(spec: str) -> tuple[str, str, int]:
    """RULE, or RULE:FILE:LINE -> (rule, file, line); ("", 0) for the file and line when not given."""
    parts = spec.split(":")
    if len(parts) == 1 and parts[0]:
        return parts[0], "", 0
    if len(parts) == 3 and parts[0] and parts[1] and parts[2].isdigit():
        return parts[0], parts[1], int(parts[2])
    raise UsageError(f"--accept {spec!r} is not RULE or RULE:FILE:LINE",
                     "e.g. --accept curl-pipe-sh or --accept curl-pipe-sh:site.yml:12")


def apply(report: LintReport, root: Path, accept: Sequence[str]) -> LintReport:
    specs = [(s, *parse_accept(s)) for s in accept]
    skip, warn = _lists(root)
    kept: list[Finding] = []
    for f in report.findings:
        spec = next((s for s, rule, file, line in specs if _base(f.rule) == _base(rule) and (
            not file or (_same_file(file, f.file, root) and line in (f.line, f.task_line)))), None)
        if spec is not None and (f.severity is Severity.BLOCKING or report.strict):
            report.accepted.append({**f.to_dict(), "accepted_by": spec})
            continue
        if f.source != "safeapply":  # ansible-lint applied noqa and its lists to its own findings already
            kept.append(f)
            continue
        silenced = _base(f.rule) in skip or _noqa(root, f)
        if f.severity is Severity.BLOCKING and (silenced or _base(f.rule) in warn):
            hint = _ACCEPT_HINT.format(rule=f.rule, where=f"{f.file}:{f.line}")
            kept.append(replace(f, fix=f"{f.fix}; {hint}" if f.fix else hint))
        elif not silenced:
            kept.append(f)
    report.findings = kept
    return report


def _base(rule: str) -> str:
    return rule.split("[")[0]


def _same_file(spec: str, shown: str, root: Path) -> bool:
    return spec == shown or (root / spec).resolve() == (root / shown).resolve()


def _noqa(root: Path, f: Finding) -> bool:
    for line in {f.line, f.task_line} - {0}:
        text = _line(str(root / f.file), line)
        m = _NOQA.search(text)
        if m and _base(f.rule) in {_base(r) for r in re.split(r"[\s,]+", m.group(1)) if r}:
            return True
    return False


def _line(path: str, line: int) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _lists(root: Path) -> tuple[set[str], set[str]]:
    """The project's .ansible-lint skip_list and warn_list (rule ids, tags stripped)."""
    import yaml

    config = find_config(root)
    data: Any = None
    if config is not None:
        try:
            data = yaml.safe_load(config.read_text())
        except (OSError, yaml.YAMLError):
            data = None
    data = data if isinstance(data, dict) else {}
    return ({_base(str(r)) for r in data.get("skip_list") or []},
            {_base(str(r)) for r in data.get("warn_list") or []})
