"""Snapshots through the local transport against temp directories (real files, real processes)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from safeapply.errors import SnapshotError, UsageError
from safeapply.snapshot import Store, diff, listing, restore, take
from safeapply.snapshot.diff import compare
from safeapply.transport.local import LocalTransport


@pytest.fixture
def env(tmp_path: Path) -> tuple[LocalTransport, Path, Store, str]:
    root = tmp_path / "etc"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.conf").write_text("one\ntwo\npassword = hunter2\n")
    (root / "shadow").write_text("root:$6$secret:19000::::::\n")
    os.link(root / "a.conf", root / "sub" / "a-link")
    (root / "lnk").symlink_to("a.conf")
    os.mkfifo(root / "fifo")
    odd = os.fsencode(root) + b"/odd \n\xff name"
    with open(odd, "wb") as f:
        f.write(b"\x00\x01binary")
    os.chmod(root / "sub", 0o1750)
    os.chmod(root / "a.conf", 0o4640)
    os.setxattr(root / "sub" / "deep", "user.note", b"v1")
    subprocess.run(["setfacl", "-m", "u:nobody:rx", str(root / "sub")], check=True)
    subprocess.run(["setfacl", "-d", "-m", "g:nogroup:r", str(root / "sub")], check=True)
    return LocalTransport("local1"), root, Store(tmp_path / "store"), str(tmp_path / "target")


def snap(env: tuple[LocalTransport, Path, Store, str]) -> str:
    t, root, store, base = env
    return take(t, [str(root)], store, target_base=base).id


def test_take_is_incremental_and_kept_on_target(env) -> None:
    t, root, store, base = env
    first = take(t, [str(root)], store, target_base=base)
    assert first.new_blobs == 3 and first.files >= 10
    second = take(t, [str(root)], store, target_base=base)
    assert second.new_blobs == 0 and second.bytes_received < first.bytes_received + 10
    assert Path(base, "host-snapshots", "manifests", f"{first.id}.jsonl").exists()
    assert os.access(Path(base, "bin", "safeapply-restore.py"), os.X_OK)
    for p in store.root.rglob("*"):
        assert (p.stat().st_mode & 0o777) in (0o700, 0o600), p


def test_restore_undoes_every_kind_of_change(env) -> None:
    t, root, store, base = env
    sid = snap(env)
    before = listing(t, [str(root)])
    (root / "a.conf").write_text("changed\n")
    (root / "new").write_text("new file")
    (root / "sub" / "deep").rename(root / "moved")
    os.chmod(root / "sub", 0o755)
    os.chown(root / "shadow", 65534, 65534)
    (root / "lnk").unlink()
    (root / "lnk").symlink_to("/etc/passwd")
    os.unlink(os.fsencode(root) + b"/odd \n\xff name")
    os.rmdir(root / "empty")
    (root / "empty").write_text("now a file")
    report = restore(t, sid, store, target_base=base)
    assert report.changed
    assert compare(before, listing(t, [str(root)])) == []
    again = restore(t, sid, store, target_base=base)
    assert again.changes == ()


def test_installed_program_restores_without_the_controller(env) -> None:
    t, root, _store, base = env
    sid = snap(env)
    before = listing(t, [str(root)])
    (root / "a.conf").write_text("changed\n")
    out = subprocess.run([f"{base}/bin/safeapply-restore.py", sid], capture_output=True, check=True).stdout
    assert json.loads(out)["changes"][0]["path"].endswith("a.conf")
    assert compare(before, listing(t, [str(root)])) == []
    assert list(Path(base, "restores").glob(f"*-{sid}.json"))


def test_diff_redacts_secrets(env) -> None:
    t, root, store, _base = env
    sid = snap(env)
    (root / "a.conf").write_text("one\nthree\npassword = swordfish\n")
    (root / "shadow").write_text("root:$6$other:19000::::::\n")
    os.chmod(root / "sub", 0o700)
    got, changes = diff(t, None, store)
    assert got == sid
    by = {Path(c.path).name: c for c in changes}
    assert by["a.conf"].kind == "modified" and "+three" in (by["a.conf"].diff or "")
    assert "swordfish" not in (by["a.conf"].diff or "") and "hunter2" not in (by["a.conf"].diff or "")
    assert by["shadow"].secret and by["shadow"].diff is None
    assert by["sub"].kind == "metadata" and "mode" in by["sub"].fields
    _, shown = diff(t, sid, store, show_secrets=True)
    assert "swordfish" in next(c.diff for c in shown if c.path.endswith("a.conf") and c.diff)


def test_corrupt_blob_and_unknown_id(env) -> None:
    t, root, store, base = env
    sid = snap(env)
    with pytest.raises(UsageError):
        restore(t, "nope", store, target_base=base)
    blob = next(p for p in (store.root / "blobs").rglob("*") if p.is_file())
    blob.write_bytes(b"evil")
    (root / "a.conf").write_text("changed\n")
    with pytest.raises(SnapshotError, match="corrupt"):
        restore(t, sid, store, target_base=base)
    assert (root / "a.conf").read_text() == "changed\n"


def test_unreadable_file_is_listed_not_dropped() -> None:
    import shutil
    import tempfile

    from safeapply.remote import bundle

    root = Path(tempfile.mkdtemp(prefix="safeapply-test-"))  # pytest's tmp_path is not open to nobody
    package = Path(tempfile.mkdtemp(prefix="safeapply-test-"))
    os.chmod(root, 0o755)
    os.chmod(package, 0o755)
    (package / "target.pyz").write_bytes(bundle().data)  # the on-host package, as installed on a host
    try:
        _scan_as_nobody(root, package / "target.pyz")
    finally:
        shutil.rmtree(root)
        shutil.rmtree(package)


def _scan_as_nobody(root: Path, package: Path) -> None:
    (root / "secret").write_text("x")
    os.chmod(root / "secret", 0o600)
    (root / "open").write_text("y")
    proc = subprocess.run(["runuser", "-u", "nobody", "--", "python3", str(package), "snapshot.scan", "--host", "h",
                           "--root", str(root)], capture_output=True, check=True)
    import zlib

    entries = {Path(e["p"]).name: e for e in map(json.loads, zlib.decompress(proc.stdout).splitlines()[1:])}
    assert entries["secret"]["err"] == "Permission denied" and "h" not in entries["secret"]
    assert "h" in entries["open"]


def test_corrupt_blob_on_the_target_is_replaced_from_the_controller(env) -> None:
    t, root, store, base = env
    sid = snap(env)
    from safeapply.target.snapshot.packs import Packs

    for path, off, n in [loc for locs in Packs(os.fsencode(base)).where.values() for loc in locs]:
        with open(path, "r+b") as f:  # every blob on the host rots in place
            f.seek(off)
            f.write(b"~" * n)
    (root / "a.conf").write_text("changed\n")
    report = restore(t, sid, store, target_base=base)
    assert any(c["path"].endswith("a.conf") for c in report.changes)
    assert restore(t, sid, store, target_base=base).changes == ()
    assert (root / "a.conf").read_text().startswith("one\n")


def test_target_keeps_the_newest_copies_and_those_a_switch_needs(env) -> None:
    from safeapply.target.snapshot.packs import KEEP

    _t, root, _store, base = env
    ids = []
    for i in range(KEEP + 3):
        (root / "a.conf").write_text(f"version {i}\n")
        ids.append(snap(env))
        if i == 2:  # an armed dead-man's switch restores from this one: kept
            state = Path(base, "deadman", "run-1")
            state.mkdir(parents=True)
            (state / "config.json").write_text(json.dumps({"snapshot_id": ids[2]}))
    kept = {p.stem for p in Path(base, "host-snapshots", "manifests").glob("*.jsonl")}
    assert kept == {ids[2], *ids[-KEEP:]}  # the first two went, and so did their packs
    packs = list(Path(base, "host-snapshots", "packs").glob("*.pack"))
    assert len(packs) == KEEP + 2  # the first (every other file) + one per kept change
    for sid, text in ((ids[2], "version 2\n"), (ids[-KEEP], "version 3\n")):  # still restorable on the host
        subprocess.run([f"{base}/bin/safeapply-restore.py", sid], capture_output=True, check=True)
        assert (root / "a.conf").read_text() == text
