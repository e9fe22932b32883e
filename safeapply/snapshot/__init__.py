"""Snapshots that restore byte-exact: capture over a Transport, a content-addressed store, restore, diff.

The run pipeline calls `take`, `restore`, `diff` and `listing`; all raise safeapply errors only."""

from __future__ import annotations

from safeapply.snapshot.capture import SnapshotInfo, listing, take
from safeapply.snapshot.diff import Change, compare, diff
from safeapply.snapshot.manifest import Manifest
from safeapply.snapshot.restore import RestoreReport, restore
from safeapply.snapshot.store import Store, Summary

__all__ = ["Change", "Manifest", "RestoreReport", "SnapshotInfo", "Store", "Summary", "compare", "diff",
           "listing", "restore", "take"]
