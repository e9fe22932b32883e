"""The project config file, `safeapply.toml`: the defaults a cron line would otherwise repeat.

Found like ansible.cfg: `$SAFEAPPLY_CONFIG`, else `safeapply.toml` in the current directory, else
`~/.config/safeapply/config.toml`; the first found is the only one read. Flags and environment variables
override it (click's order: command line, then environment, then this file, then the built-in default).
Unknown keys or values of the wrong type are a ConfigError (exit 3), in one line.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safeapply.errors import ConfigError

ENV = "SAFEAPPLY_CONFIG"
FILE_NAME = "safeapply.toml"


@dataclass(frozen=True)
class Key:
    """One setting: its TOML type check, built-in default, env var, and the command options it presets."""

    kind: str  # what the file must hold, as said in the error
    check: Callable[[Any], bool]
    default: Any
    env: str | None
    options: tuple[tuple[str, str], ...]  # (command, parameter name)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v >= 0


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _string(v: Any) -> bool:
    return isinstance(v, str) and bool(v)


def _strings(v: Any) -> bool:
    return isinstance(v, list) and all(_string(x) for x in v)


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


KEYS: dict[str, Key] = {
    "roots": Key("a list of paths", _strings, ["/etc"], None, (("run", "root"),)),
    "settle": Key("a number of seconds", _number, 3.0, "SAFEAPPLY_SETTLE", (("run", "settle"),)),
    "deadman_deadline": Key("a number of seconds", _number, 300.0, "SAFEAPPLY_DEADMAN_DEADLINE",
                            (("run", "deadman_deadline"), ("rollback", "deadman_deadline"))),
    "notify": Key("a URL string", _string, None, "SAFEAPPLY_NOTIFY", (("run", "notify_url"),)),
    "metrics_dir": Key("a path string", _string, None, "SAFEAPPLY_METRICS_DIR", (("run", "metrics_dir"),)),
    "accept": Key("a list of RULE[:FILE:LINE] strings", _strings, [], None,
                  (("run", "accept"), ("lint", "accept"))),
    "strict_lint": Key("true or false", _bool, False, "SAFEAPPLY_STRICT_LINT", (("run", "strict_lint"),)),
    "strict_plan": Key("true or false", _bool, False, "SAFEAPPLY_STRICT_PLAN", (("run", "strict_plan"),)),
    "idle_timeout": Key("a number of seconds", _number, 300.0, "SAFEAPPLY_IDLE_TIMEOUT", ()),
    "keep_snapshots": Key("a whole number (0: keep all)", _count, 10, "SAFEAPPLY_KEEP_SNAPSHOTS", ()),
    "speedups": Key("true or false", _bool, True, "SAFEAPPLY_SPEEDUPS", (("run", "speedups"),)),
}


@dataclass(frozen=True)
class ProjectConfig:
    path: Path | None  # None: no config file found
    values: dict[str, Any]

    def default_map(self) -> dict[str, dict[str, Any]]:
        """click's `default_map`: per command, the parameter defaults this file sets."""
        out: dict[str, dict[str, Any]] = {}
        for name, value in self.values.items():
            for command, param in KEYS[name].options:
                out.setdefault(command, {})[param] = value
        return out

    def effective(self) -> list[tuple[str, Any, str]]:
        """(key, value, where it came from) for every setting: env var, this file, or the default."""
        rows = []
        for name, key in KEYS.items():
            if key.env and os.environ.get(key.env):
                rows.append((name, os.environ[key.env], f"env {key.env}"))
            elif name in self.values:
                rows.append((name, self.values[name], str(self.path)))
            else:
                rows.append((name, key.default, "default"))
        return rows


def find() -> Path | None:
    if env := os.environ.get(ENV):
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"{ENV}={env} is not a file", f"create it, or unset {ENV}")
        return path
    for path in (Path.cwd() / FILE_NAME, Path.home() / ".config" / "safeapply" / "config.toml"):
        if path.is_file():
            return path
    return None


def load(path: Path | None = None) -> ProjectConfig:
    path = path or find()
    if path is None:
        return ProjectConfig(None, {})
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}", "see the README's config file section") from e
    for name, value in data.items():
        key = KEYS.get(name)
        if key is None:
            raise ConfigError(f"{path}: unknown key {name!r}", f"known keys: {', '.join(KEYS)}")
        if not key.check(value):
            raise ConfigError(f"{path}: {name} must be {key.kind}, not {value!r}", f"fix {name} in {path}")
    return ProjectConfig(path, data)


def setting(name: str) -> Any:
    """One setting's effective value for code that has no command option for it: its env var (read as the
    key's type), else the config file, else the default. A bad value is a ConfigError naming where it came from."""
    key = KEYS[name]
    raw = os.environ.get(key.env) if key.env else None
    if not raw:
        return load().values.get(name, key.default)
    try:
        value: Any = int(raw) if isinstance(key.default, int) else float(raw)
    except ValueError:
        value = raw
    if not key.check(value):
        raise ConfigError(f"{key.env}={raw!r}: {name} must be {key.kind}", f"fix or unset {key.env}")
    return value
