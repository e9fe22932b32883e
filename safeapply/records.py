"""Run history: one SQLite row per `safeapply run`, under the state dir (file 0600: it holds scans and diffs).

A row is written when the run starts and updated after every stage, so a run that was killed still leaves
a record saying how far it got. Sections (lint, scans, plan, ...) are JSON columns: they are read back
whole by `safeapply show`, never queried inside.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import secrets
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safeapply.config import private_dir, state_dir
from safeapply.errors import ConfigError, UsageError

SECTIONS = ("inventory", "hosts", "provenance", "lint", "scans", "plan", "snapshots", "apply",
            "verify", "rollback", "timings", "notes")
_SCALARS = ("id", "started", "finished", "user", "controller", "playbook", "playbook_sha256", "limit_",
            "check_mode", "status", "exit_code")
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, started TEXT NOT NULL, finished TEXT, user TEXT, controller TEXT,
    playbook TEXT, playbook_sha256 TEXT, limit_ TEXT, check_mode INTEGER, status TEXT, exit_code INTEGER,
    {", ".join(f"{s} TEXT" for s in SECTIONS)}
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started);
"""


@dataclass
class RunRecord:
    id: str
    started: str
    user: str
    controller: str
    playbook: str
    playbook_sha256: str
    limit_: str | None = None
    check_mode: bool = False
    status: str = "running"
    exit_code: int | None = None
    finished: str | None = None
    sections: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in _SCALARS}
        d["limit"] = d.pop("limit_")
        d["check_mode"] = bool(d["check_mode"])
        d.update({s: self.sections.get(s) for s in SECTIONS})
        return d


def new_record(playbook: Path, *, limit: str | None = None, check: bool = False) -> RunRecord:
    now = dt.datetime.now(dt.UTC)
    return RunRecord(
        id=f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}",
        started=now.isoformat(timespec="seconds"),
        user=getpass.getuser(),
        controller=socket.gethostname(),
        playbook=str(playbook.resolve()),
        playbook_sha256=file_sha256(playbook),
        limit_=limit,
        check_mode=check,
    )


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 16), b""):
                h.update(chunk)
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}", "check the path and its permissions") from e
    return h.hexdigest()


def provenance(prompt_file: Path | None, model: str | None, note: str | None) -> dict[str, Any]:
    """What produced the playbook: the prompt (its text and SHA-256), the model, a free note."""
    out: dict[str, Any] = {"model": model, "note": note, "prompt_file": None}
    if prompt_file is not None:
        try:
            text = prompt_file.read_text(errors="replace")
        except OSError as e:
            raise UsageError(f"cannot read --prompt-file {prompt_file}: {e.strerror}") from e
        out.update(prompt_file=str(prompt_file.resolve()), prompt=text,
                   prompt_sha256=hashlib.sha256(text.encode()).hexdigest())
    return out


class RunStore:
    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            try:
                path = private_dir(state_dir()) / "runs.sqlite"
            except OSError as e:
                d = state_dir()
                why = "not a directory" if d.exists() and not d.is_dir() else e.strerror
                raise ConfigError(f"cannot use the state dir {d}: {why}",
                                  "point SAFEAPPLY_STATE_DIR at a writable directory") from e
        self.path = path

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            _create_private(self.path)
            with closing(sqlite3.connect(self.path, timeout=30)) as db:
                db.row_factory = sqlite3.Row
                db.executescript(_SCHEMA)
                with db:
                    yield db
        except OSError as e:
            raise ConfigError(f"cannot open the run history {self.path}: {e.strerror}",
                              "point SAFEAPPLY_STATE_DIR at a writable directory") from e
        except sqlite3.OperationalError as e:
            raise ConfigError(f"cannot use the run history {self.path}: {e}",
                              "check its permissions, or that no other process holds it") from e
        except sqlite3.DatabaseError as e:
            raise ConfigError(f"the run history {self.path} is damaged: {e}",
                              "move it aside; safeapply starts a new one") from e

    def save(self, rec: RunRecord) -> None:
        """Insert or replace the whole record (cheap: one row)."""
        cols = [*_SCALARS, *SECTIONS]
        values = [getattr(rec, k) for k in _SCALARS] + [_dumps(rec.sections.get(s)) for s in SECTIONS]
        with self._db() as db:
            db.execute(
                f"INSERT OR REPLACE INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                values,
            )

    def get(self, run_id: str) -> RunRecord:
        """A run by id or unique id prefix; 'last' is the newest run."""
        with self._db() as db:
            if run_id == "last":
                rows = db.execute("SELECT * FROM runs ORDER BY started DESC, id DESC LIMIT 1").fetchall()
            else:
                rows = db.execute("SELECT * FROM runs WHERE id LIKE ? ORDER BY id LIMIT 2",
                                  (run_id.replace("%", "") + "%",)).fetchall()
        if not rows:
            raise UsageError(f"no run {run_id!r} in {self.path}", "list runs with `safeapply history`")
        if len(rows) > 1:
            raise UsageError(f"run id {run_id!r} is ambiguous", "give more characters of the id")
        return _from_row(rows[0])

    def started_since(self, since: str) -> list[RunRecord]:
        """Runs started at or after `since` (ISO time, as `started` is written)."""
        with self._db() as db:
            rows = db.execute("SELECT * FROM runs WHERE started >= ? ORDER BY started", (since,)).fetchall()
        return [_from_row(r) for r in rows]

    def list(self, limit: int = 20) -> list[RunRecord]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM runs ORDER BY started DESC, id DESC LIMIT ?", (limit,)).fetchall()
        return [_from_row(r) for r in rows]

    def count_rollbacks(self, playbook: str | None = None) -> int:
        q = "SELECT COUNT(*) FROM runs WHERE rollback IS NOT NULL AND rollback != 'null'"
        args: tuple[str, ...] = ()
        if playbook is not None:
            q, args = q + " AND playbook = ?", (playbook,)
        with self._db() as db:
            return int(db.execute(q, args).fetchone()[0])


def _create_private(path: Path) -> None:
    private_dir(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _from_row(row: sqlite3.Row) -> RunRecord:
    rec = RunRecord(**{k: row[k] for k in _SCALARS})
    rec.check_mode = bool(rec.check_mode)
    rec.sections = {s: json.loads(row[s]) for s in SECTIONS if row[s] is not None}
    return rec
