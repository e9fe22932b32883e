"""ansible-lint, run as a subprocess with its codeclimate JSON output, started early and read late.

Its own config (.ansible-lint) is honoured: we write a copy with absolute paths plus `mock_modules` for
modules we already report ourselves (unknown, or from a collection not installed), so that one missing
module does not stop ansible-lint's syntax check from looking at everything else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safeapply.lint.model import Finding, Severity

CONFIG_NAMES = (".ansible-lint", ".ansible-lint.yml", ".ansible-lint.yaml", ".config/ansible-lint.yml",
                ".config/ansible-lint.yaml")
BLOCKING_BASES = {"syntax-check", "load-failure", "parser-error"}
BLOCKING_TAGS = {"yaml[key-duplicates]", "jinja[invalid]", "args[module]", "yaml[syntax]"}
OFFLINE_ENV = {"ANSIBLE_LINT_SKIP_SCHEMA_UPDATE": "1", "PRE_COMMIT": "1", "NO_COLOR": "1",
               "ANSIBLE_GALAXY_DISABLE_GPG_VERIFY": "1",
               "ANSIBLE_DEVEL_WARNING": "false", "ANSIBLE_DEPRECATION_WARNINGS": "false",
               # the syntax check runs without an inventory (implicit localhost): settings that other
               # parts of safeapply put in os.environ for real runs must not make it fail
               "ANSIBLE_INVENTORY_UNPARSED_FAILED": "false", "ANSIBLE_HOST_PATTERN_MISMATCH": "ignore"}


def find_config(start: Path) -> Path | None:
    """The project's ansible-lint config, searched upwards like ansible-lint does (stops at a .git dir)."""
    for parent in (start, *start.parents):
        for name in CONFIG_NAMES:
            if (parent / name).is_file():
                return parent / name
        if (parent / ".git").exists():
            return None
    return None


def merged_config(config: Path | None, root: Path, mocks: list[str], out_dir: Path) -> Path:
    import yaml  # not at the top: a cache hit never needs it

    data: dict[str, Any] = {}
    if config:
        try:
            loaded = yaml.safe_load(config.read_text())
            data = loaded if isinstance(loaded, dict) else {}
        except (OSError, yaml.YAMLError):
            data = {}
        base = config.parent.parent if config.parent.name == ".config" else config.parent
        data["exclude_paths"] = [str(base / p) for p in data.get("exclude_paths", []) or []]
        data["project_dir"] = str(base / str(data.get("project_dir", ".")))
    else:
        data["project_dir"] = str(root)
    data["mock_modules"] = sorted({*(data.get("mock_modules") or []), *mocks})
    data["offline"] = True
    path = out_dir / "ansible-lint.yml"
    path.write_text(yaml.safe_dump(data))
    return path


@dataclass
class Running:
    proc: subprocess.Popen[bytes] | None
    tmp: tempfile.TemporaryDirectory[str]
    error: str = ""


def start(files: list[Path], root: Path, profile: str | None, mocks: list[str]) -> Running:
    tmp = tempfile.TemporaryDirectory(prefix="safeapply-lint-")
    cfg = merged_config(find_config(root), root, mocks, Path(tmp.name))
    argv = [sys.executable, "-m", "ansiblelint", "--offline", "--nocolor", "-f", "codeclimate", "-c", str(cfg)]
    argv += ["--profile", profile] if profile else []
    argv += [str(f.resolve()) for f in files]  # cwd is the project root: relative paths would not resolve
    env = {**os.environ, **OFFLINE_ENV}
    try:
        proc = subprocess.Popen(argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)
    except OSError as e:
        return Running(None, tmp, f"cannot start ansible-lint: {e}")
    return Running(proc, tmp)


def collect(run: Running, not_installed: set[str], timeout: float = 600) -> list[Finding]:
    try:
        if run.proc is None:
            return [_tool_problem(run.error)]
        try:
            out, err = run.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            run.proc.kill()
            run.proc.communicate()
            return [_tool_problem(f"ansible-lint did not finish in {timeout:.0f} s")]
        try:
            items = json.loads(out.decode("utf-8", "replace") or "[]")
        except json.JSONDecodeError:
            tail = err.decode("utf-8", "replace").strip().splitlines()
            return [_tool_problem(f"ansible-lint failed (rc {run.proc.returncode}): "
                                  f"{tail[-1] if tail else 'no output'}")]
        return [_finding(item, not_installed) for item in items if isinstance(item, dict)]
    finally:
        run.tmp.cleanup()


def stop(run: Running) -> None:
    """End it early (any thread may call this): a `collect` running meanwhile returns a tool problem."""
    if run.proc is not None and run.proc.poll() is None:
        run.proc.kill()


def discard(run: Running) -> None:
    """Never collected (the answer came from the cache, or the caller gave up): end it and clean up."""
    stop(run)
    if run.proc is not None:
        run.proc.communicate()
    run.tmp.cleanup()


def _tool_problem(message: str) -> Finding:
    return Finding("ansible-lint", Severity.WARNING, "", 0, message,
                   "run `ansible-lint` by hand to see why", source="ansible-lint")


def classify(tag: str, message: str, not_installed: set[str]) -> Severity:
    if tag.startswith("syntax-check") and any(f"'{c}." in message for c in not_installed):
        return Severity.WARNING  # a collection that is not installed here: we cannot tell
    if tag.split("[")[0] in BLOCKING_BASES or tag in BLOCKING_TAGS:
        return Severity.BLOCKING
    return Severity.WARNING


def _finding(item: dict[str, Any], not_installed: set[str]) -> Finding:
    tag = str(item.get("check_name", "ansible-lint"))
    loc = item.get("location") or {}
    line = (loc.get("lines") or {}).get("begin") or ((loc.get("positions") or {}).get("begin") or {}).get("line")
    message = str(item.get("description", "")).strip()
    url = str(item.get("url", ""))
    return Finding(tag, classify(tag, message, not_installed), str(loc.get("path", "")), int(line or 0),
                   message, f"see {url}" if url else "", source="ansible-lint")
