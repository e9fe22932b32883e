"""A snapshot's manifest: a JSON header line (host, created, roots) and one JSON line per path.

Paths are str decoded from the host's bytes with utf-8/surrogateescape (newlines and non-UTF-8 names
survive). The snapshot id is time-host-hash, the hash covering the whole manifest, so an id verifies it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from safeapply.errors import SnapshotError
from safeapply.target.snapshot.common import id_matches, snapshot_id

Entry = dict[str, Any]


@dataclass(frozen=True)
class Manifest:
    id: str
    host: str
    created: str
    roots: tuple[str, ...]
    entries: tuple[Entry, ...] = field(repr=False)
    raw: bytes = field(repr=False)

    @classmethod
    def parse(cls, raw: bytes, sid: str | None = None) -> Manifest:
        """Parse and verify (against `sid` when given); any defect is a SnapshotError."""
        sid = sid or snapshot_id(raw)
        if not id_matches(sid, raw):
            raise SnapshotError(f"snapshot {sid}: manifest does not match its id (corrupt store?)")
        try:
            lines = raw.splitlines()
            head = json.loads(lines[0])
            entries = tuple(json.loads(x) for x in lines[1:])
            return cls(sid, head["host"], head["created"], tuple(head["roots"]), entries, raw)
        except (ValueError, KeyError, IndexError) as e:
            raise SnapshotError(f"snapshot {sid}: manifest is unreadable: {e}") from e

    def by_path(self) -> dict[str, Entry]:
        return {e["p"]: e for e in self.entries}

    def blobs(self) -> set[str]:
        return {e["h"] for e in self.entries if e["t"] == "f" and "h" in e}

    @property
    def size(self) -> int:
        """Bytes of file content (hard links counted once)."""
        return sum(e.get("sz", 0) for e in self.entries if e["t"] == "f" and "lk" not in e)

    @property
    def unreadable(self) -> list[str]:
        return [e["p"] for e in self.entries if "err" in e]


def show_path(p: str) -> str:
    """A path for humans: control characters and undecodable bytes escaped."""
    if p.isprintable() and p.encode("utf-8", "surrogateescape").decode("utf-8", "replace") == p:
        return p
    return json.dumps(p)[1:-1]
