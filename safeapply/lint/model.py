"""Lint results as pure data: findings, the report, and the connection facts lockout rules check against."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    BLOCKING = "blocking"
    WARNING = "warning"


@dataclass(frozen=True)
class Connection:
    """How the inventory reaches a host: lockout rules must keep this user and port able to log in."""

    user: str | None = None  # None: not known (lint run without an inventory)
    port: int = 22
    password_auth: bool = False  # the inventory logs in with a password (ansible_password)


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    file: str
    line: int
    message: str
    fix: str = ""
    source: str = "safeapply"  # or "ansible-lint"
    task_line: int = 0  # where the task starts, when `line` points inside it (ansible-lint reports the task)

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "severity": str(self.severity)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(**{**d, "severity": Severity(d["severity"])})


@dataclass
class LintReport:
    findings: list[Finding] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    strict: bool = False
    profile: str = "production"
    cached: bool = False
    tools: dict[str, str] = field(default_factory=dict)
    accepted: list[dict[str, Any]] = field(default_factory=list)  # blocking findings let through by --accept

    @property
    def blocking(self) -> list[Finding]:
        """Findings that stop a run: blocking ones, and with strict every warning too."""
        return [f for f in self.findings if self.strict or f.severity is Severity.BLOCKING]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    @property
    def missing_files(self) -> list[Finding]:
        return [f for f in self.findings if f.rule == "missing-file"]

    @property
    def ok(self) -> bool:
        return not self.blocking

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "strict": self.strict,
            "profile": self.profile,
            "cached": self.cached,
            "files": self.files,
            "tools": self.tools,
            "blocking": len(self.blocking),
            "warnings": len(self.warnings),
            "findings": [f.to_dict() for f in self.findings],
            "accepted": self.accepted,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LintReport:
        return cls(
            findings=[Finding.from_dict(f) for f in d["findings"]],
            files=list(d["files"]),
            strict=bool(d["strict"]),
            profile=str(d["profile"]),
            tools=dict(d.get("tools", {})),
        )
