"""SARIF 2.1.0 for code-scanning CI (pure: a report in, a dict out)."""

from __future__ import annotations

from typing import Any

from safeapply import __version__
from safeapply.lint.model import LintReport, Severity

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def to_sarif(report: LintReport) -> dict[str, Any]:
    rules = sorted({f.rule for f in report.findings})
    results = []
    for f in report.findings:
        level = "error" if f.severity is Severity.BLOCKING or report.strict else "warning"
        result: dict[str, Any] = {
            "ruleId": f.rule, "level": level,
            "message": {"text": f"{f.message}. Fix: {f.fix}" if f.fix else f.message},
            "properties": {"source": f.source, "severity": str(f.severity)},
        }
        if f.file:
            region = {"startLine": max(f.line, 1)}
            result["locations"] = [{"physicalLocation": {"artifactLocation": {"uri": f.file},
                                                         "region": region}}]
        results.append(result)
    driver = {"name": "safeapply-lint", "version": __version__, "informationUri": "https://docs.ansible.com/",
              "rules": [{"id": r, "shortDescription": {"text": r}} for r in rules]}
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [{"tool": {"driver": driver}, "results": results}]}
