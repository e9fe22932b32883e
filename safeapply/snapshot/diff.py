"""What changed on a live host since a snapshot: added, removed, modified, metadata-only; unified diffs for
text files, with secrets redacted unless asked otherwise."""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from safeapply.redact import is_secret, patterns, redact_lines
from safeapply.snapshot.capture import listing
from safeapply.snapshot.manifest import Entry
from safeapply.snapshot.remote import fetch
from safeapply.snapshot.store import Store
from safeapply.transport.base import Transport

TEXT_MAX = 512 << 10
META = {"u": "owner", "g": "group", "m": "mode", "mt": "mtime", "x": "xattrs/ACLs"}


@dataclass(frozen=True)
class Change:
    path: str
    kind: str  # added | removed | modified | metadata
    fields: tuple[str, ...] = ()
    diff: str | None = None
    secret: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "kind": self.kind, "fields": list(self.fields), "diff": self.diff,
                "secret": self.secret}


def compare(old: dict[str, Entry], new: dict[str, Entry]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(path, kind, changed metadata fields) for every difference between two listings."""
    out: list[tuple[str, str, tuple[str, ...]]] = []
    for p in sorted(old.keys() | new.keys(), key=lambda s: s.encode("utf-8", "surrogateescape")):
        a, b = old.get(p), new.get(p)
        if a is None:
            out.append((p, "added", ()))
        elif b is None:
            out.append((p, "removed", ()))
        elif any(a.get(k) != b.get(k) for k in ("t", "h", "l", "rd")):
            out.append((p, "modified", ()))
        else:
            keys = [k for k in META if k != "m" or a["t"] != "l"]
            fields = tuple(META[k] for k in keys if a.get(k) != b.get(k))
            if fields:
                out.append((p, "metadata", fields))
    return out


def diff(transport: Transport, snapshot_id: str | None = None, store: Store | None = None,
         show_secrets: bool = False, secret_paths: Sequence[str] = ()) -> tuple[str, list[Change]]:
    """(snapshot id, changes on the host since that snapshot; latest of the host when no id is given)."""
    store = store or Store()
    with store.reading():  # the retention leaves this snapshot alone meanwhile
        return _diff(transport, store.resolve(transport.name, snapshot_id), store, show_secrets, secret_paths)


def _diff(transport: Transport, sid: str, store: Store, show_secrets: bool,
          secret_paths: Sequence[str]) -> tuple[str, list[Change]]:
    snap = store.load(sid)
    old, new = snap.by_path(), listing(transport, snap.roots)
    found = compare(old, new)
    wanted = [p for p, kind, _ in found if kind != "metadata" and _texty(new.get(p))]
    live = _read(transport, wanted)
    pats = patterns(secret_paths)
    changes = []
    for p, kind, fields in found:
        if kind == "metadata":
            changes.append(Change(p, kind, fields))
            continue
        before = _blob(store, old.get(p))
        after = live.get(p)
        secret = is_secret(p, before, pats) or is_secret(p, after, pats)
        text = None if secret and not show_secrets else _unified(p, before, after, redact=not show_secrets)
        changes.append(Change(p, kind, fields, text, secret))
    return sid, changes


def _texty(e: Entry | None) -> bool:
    return e is not None and e["t"] == "f" and e.get("sz", 0) <= TEXT_MAX and "err" not in e


def _blob(store: Store, e: Entry | None) -> bytes | None:
    return store.get_blob(e["h"]) if e and _texty(e) and "h" in e else None


def _read(t: Transport, paths: list[str]) -> dict[str, bytes]:
    if not paths:
        return {}
    req = b"".join(json.dumps(p).encode() + b"\n" for p in paths)
    recs, _size = fetch(t, "read", [], req)
    return {name: data for tag, name, data in recs if tag == b"F"}


def _unified(path: str, before: bytes | None, after: bytes | None, redact: bool) -> str | None:
    if b"\0" in (before or b"") + (after or b""):
        return None
    try:
        a = (before or b"").decode().splitlines(keepends=True)
        b = (after or b"").decode().splitlines(keepends=True)
    except UnicodeDecodeError:
        return None
    if redact:
        a, b = redact_lines(a), redact_lines(b)
    lines = difflib.unified_diff(a, b, f"a{path}", f"b{path}")
    return "".join(x if x.endswith("\n") else x + "\n\\ No newline at end of file\n" for x in lines)
