"""Run records in a real SQLite file under a temp state dir."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from safeapply.errors import UsageError
from safeapply.records import RunStore, new_record, provenance


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunStore:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))
    return RunStore()


def test_round_trip_and_private_file(store: RunStore, tmp_path: Path) -> None:
    pb = tmp_path / "site.yml"
    pb.write_text("- hosts: all\n")
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("make nginx listen on 8080")
    rec = new_record(pb, limit="web1")
    rec.sections["provenance"] = provenance(prompt, "some-model", "ticket 42")
    rec.sections["timings"] = {"lint": 0.5}
    store.save(rec)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    rec.sections["apply"] = {"status": "successful"}
    rec.status, rec.exit_code = "applied", 0
    store.save(rec)
    got = store.get(rec.id[:12]).to_dict()
    assert got["playbook_sha256"] == hashlib.sha256(pb.read_bytes()).hexdigest()
    assert got["limit"] == "web1" and got["exit_code"] == 0 and got["status"] == "applied"
    assert got["provenance"]["prompt"] == "make nginx listen on 8080"
    assert got["provenance"]["model"] == "some-model" and got["apply"] == {"status": "successful"}
    assert got["user"] and got["controller"] and got["verify"] is None
    assert store.get("last").id == rec.id


def test_list_newest_first_and_rollback_count(store: RunStore, tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text("[]\n")
    ids = []
    for i in range(3):
        rec = new_record(pb)
        rec.id = f"20250101-00000{i}-aaaaa{i}"
        rec.started = f"2025-01-01T00:00:0{i}+00:00"
        if i == 1:
            rec.sections["rollback"] = {"h": "restored"}
        store.save(rec)
        ids.append(rec.id)
    assert [r.id for r in store.list()] == ids[::-1]
    assert store.count_rollbacks() == 1 and store.count_rollbacks(str(pb.resolve())) == 1
    with pytest.raises(UsageError, match="ambiguous"):
        store.get("20250101")
    with pytest.raises(UsageError, match="no run"):
        store.get("nope")


def test_unreadable_inputs_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        new_record(tmp_path / "missing.yml")
    with pytest.raises(UsageError):
        provenance(tmp_path / "missing.txt", None, None)
