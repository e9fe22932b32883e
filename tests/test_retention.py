"""Issue 11 item 14: the controller keeps every host's /etc (shadow, keys) in its snapshots; by default it keeps
only a host's newest `keep_snapshots`, plus any snapshot a recent run's record names (`rollback RUN` needs it).
A LocalTransport host: the real target program, no sandbox needed for the controller's store."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from safeapply.records import RunStore, new_record
from safeapply.snapshot.capture import take
from safeapply.snapshot.store import Store
from safeapply.transport.local import LocalTransport


def _snapshots(tmp_path: Path, store: Store, n: int) -> list[str]:
    root = tmp_path / "etc"
    root.mkdir(exist_ok=True)
    out = []
    with LocalTransport("web1") as t:
        for i in range(n):
            (root / "motd").write_text(f"version {i}\n")
            out.append(take(t, [str(root)], store, target_base=str(tmp_path / "target")).id)
    return out


def test_a_host_keeps_its_newest_snapshots_and_those_a_recent_run_needs(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(state))
    monkeypatch.setenv("SAFEAPPLY_KEEP_SNAPSHOTS", "2")
    store = Store(state / "snapshots")
    first = _snapshots(tmp_path, store, 1)[0]
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  tasks: []\n")
    rec = new_record(pb)
    RunStore().save(dataclasses.replace(rec, sections={"snapshots": {"web1": {"id": first}}}))
    later = _snapshots(tmp_path, store, 4)
    kept = [s.id for s in store.summaries("web1")]
    assert kept == [first, *later[-2:]]  # the run's, then the newest two
    for sid in kept:  # what is kept is whole: every blob it names is still there
        assert all(store.has_blob(h) for h in store.load(sid).blobs())
    assert store.count("web1") == 3


def test_keep_snapshots_0_keeps_every_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SAFEAPPLY_KEEP_SNAPSHOTS", "0")
    store = Store(tmp_path / "state" / "snapshots")
    assert len(_snapshots(tmp_path, store, 3)) == len(store.summaries("web1")) == 3


def test_a_store_being_read_is_not_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A restore or diff reading an old snapshot holds the store shared: the retention waits for the next time."""
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SAFEAPPLY_KEEP_SNAPSHOTS", "1")
    store = Store(tmp_path / "state" / "snapshots")
    first = _snapshots(tmp_path, store, 1)[0]
    with Store(store.root).reading():
        _snapshots(tmp_path, store, 1)
        assert first in store.ids()
    _snapshots(tmp_path, store, 1)
    assert first not in store.ids() and len(store.ids()) == 1
