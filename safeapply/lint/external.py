"""ansible-lint, run as a subprocess with its codeclimate JSON output, started early and read late.

Its own config (.ansible-lint) is honoured: we write a copy with absolute paths plus `mock_modules` for
modules we already report ourselves (unknown, or from a collection not installed), so that one missing
module does not stop ansible-lint's syntax check from looking at everything else.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
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


INCOMPLETE = "lint-incomplete"  # a part of the lint did not run: never read as "no findings"
RC_INVALID_CONFIG = 3  # ansible-lint's own exit code for a config it rejects


@dataclass
class Running:
    proc: subprocess.Popen[bytes] | None
    tmp: tempfile.TemporaryDirectory[str]
    error: str = ""
    config: Path | None = None  # the project's own .ansible-lint, if any
    cwd: Path | None = None  # where it ran: the paths it reports are relative to it
    root: Path | None = None  # the project root: the paths safeapply reports are relative to it


def start(files: list[Path], root: Path, profile: str | None, mocks: list[str]) -> Running:
    tmp = tempfile.TemporaryDirectory(prefix="safeapply-lint-")
    own = find_config(root)
    cfg = merged_config(own, root, mocks, Path(tmp.name))
    argv = [sys.executable, "-m", "ansiblelint", "--offline", "--nocolor", "-f", "codeclimate", "-c", str(cfg)]
    argv += ["--profile", profile] if profile else []
    argv += [str(f.resolve()) for f in files]
    # as `ansible-playbook PLAYBOOK` started here sees the project: this directory, this ansible.cfg (pinned:
    # roles_path, collections_path), whatever folder the playbook is in
    env = {**os.environ, **OFFLINE_ENV, **_ansible_config(), **_vault_env(Path(tmp.name))}
    try:
        # its own session: stop() ends it with the syntax checks it started (they hold our pipes open)
        proc = subprocess.Popen(argv, cwd=Path.cwd(), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as e:
        return Running(None, tmp, f"cannot start ansible-lint: {e}", own)
    return Running(proc, tmp, config=own, cwd=Path.cwd(), root=root)


def _vault_env(private_dir: Path) -> dict[str, str]:
    """The vault passwords this invocation was given, for the syntax check ansible-lint runs (a vaulted
    vars_file it cannot decrypt makes the check fail: no finding, and the lint never cached)."""
    from safeapply.ansible_context import vault_env

    return vault_env(private_dir)


def _ansible_config() -> dict[str, str]:
    from safeapply.ansible_context import config_env

    return config_env()


def collect(run: Running, not_installed: set[str], timeout: float = 600) -> list[Finding]:
    try:
        if run.proc is None:
            return [_tool_problem(run.error)]
        try:
            out, err = run.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(run)
            run.proc.communicate()
            return [_tool_problem(f"ansible-lint did not finish in {timeout:.0f} s")]
        rc = run.proc.returncode
        tail = [t for t in err.decode("utf-8", "replace").strip().splitlines() if "PATH altered" not in t]
        why = _ANSI.sub("", tail[-1]).strip() if tail else "no output"
        why = why.replace(str(Path(run.tmp.name) / "ansible-lint.yml"), str(run.config or "the config"))
        if rc == RC_INVALID_CONFIG:
            where = str(run.config) if run.config else "its configuration"
            return [_tool_problem(f"ansible-lint rejected {where} ({why}): neither ansible-lint nor Ansible's "
                                  "syntax check ran", f"fix or remove the rejected key in {where} "
                                  "(`ansible-lint --offline` shows it), then lint again")]
        try:
            items = json.loads(out.decode("utf-8", "replace") or "null")
        except json.JSONDecodeError:
            items = None
        if not isinstance(items, list) or (rc not in (0, 2) and not items):
            return [_tool_problem(f"ansible-lint failed (rc {rc}): {why}; its checks and the syntax check did "
                                  "not run")]
        found = [_finding(item, not_installed) for item in items if isinstance(item, dict)]
        return [replace(f, file=_project_path(f.file, run)) for f in found]
    finally:
        run.tmp.cleanup()


def stop(run: Running) -> None:
    """End it early (any thread may call this): a `collect` running meanwhile returns a tool problem."""
    if run.proc is not None and run.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.proc.pid, signal.SIGKILL)


def discard(run: Running) -> None:
    """Never collected (the answer came from the cache, or the caller gave up): end it and clean up."""
    stop(run)
    if run.proc is not None:
        run.proc.communicate()
    run.tmp.cleanup()


def _tool_problem(message: str, fix: str = "run `ansible-lint` by hand to see why") -> Finding:
    return Finding(INCOMPLETE, Severity.WARNING, "", 0, message, fix, source="ansible-lint")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_UNEXPECTED_RC = re.compile(r"Unexpected error code (\d+) from execution of: (ansible-playbook --syntax-check.*)")


def _incomplete_syntax_check(finding: Finding) -> Finding | None:
    """ansible-lint's `internal-error` for a syntax check that could not run (a missing collection: rc 4)."""
    m = _UNEXPECTED_RC.search(finding.message)
    if finding.rule != "internal-error" or m is None:
        return None
    return Finding(INCOMPLETE, Severity.WARNING, finding.file, finding.line,
                   f"Ansible's syntax check did not run on this file: `{m.group(2).split(' -vv ')[0]}` exited "
                   f"{m.group(1)} without a message ansible-lint understands (often a collection or role that "
                   "is not installed)", f"install what the playbook needs (`ansible-galaxy install -r "
                   f"requirements.yml`), then run `ansible-playbook --syntax-check {finding.file}` to see why",
                   source="ansible-lint")


def classify(tag: str, message: str, not_installed: set[str]) -> Severity:
    if tag.startswith("syntax-check") and any(f"'{c}." in message for c in not_installed):
        return Severity.WARNING  # a collection that is not installed here: we cannot tell
    if tag.split("[")[0] in BLOCKING_BASES or tag in BLOCKING_TAGS:
        return Severity.BLOCKING
    return Severity.WARNING


def _project_path(path: str, run: Running) -> str:
    """A path ansible-lint reported (relative to where it ran) as safeapply names files: from the project root."""
    if not path or run.cwd is None or run.root is None:
        return path
    full = Path(os.path.normpath(run.cwd / path))
    try:
        return str(full.relative_to(run.root.resolve() if not full.is_relative_to(run.root) else run.root))
    except ValueError:
        return path


def _finding(item: dict[str, Any], not_installed: set[str]) -> Finding:
    raw = _raw_finding(item, not_installed)
    return _incomplete_syntax_check(raw) or raw


def _raw_finding(item: dict[str, Any], not_installed: set[str]) -> Finding:
    tag = str(item.get("check_name", "ansible-lint"))
    loc = item.get("location") or {}
    line = (loc.get("lines") or {}).get("begin") or ((loc.get("positions") or {}).get("begin") or {}).get("line")
    message = str(item.get("description", "")).strip()
    url = str(item.get("url", ""))
    return Finding(tag, classify(tag, message, not_installed), str(loc.get("path", "")), int(line or 0),
                   message, f"see {url}" if url else "", source="ansible-lint")
