"""Snapshots on real sandbox hosts over real SSH: the CLI with its exit codes, self-restore on the host,
and every bad input (unreachable host, disk full on either side, corrupt blob, unknown id, unsafe paths)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from safeapply.cli import main
from safeapply.snapshot import Store, listing, take
from safeapply.snapshot.diff import compare
from safeapply.target.snapshot.common import snapshot_id

pytestmark = pytest.mark.sandbox


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))
    return Store(tmp_path / "state" / "snapshots")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_snapshot_diff_restore_prune(host_a, state, capsys) -> None:
    inv = str(host_a.inventory)
    rc, out, _ = cli(capsys, "snapshot", "a", "-i", inv, "--json")
    assert rc == 0
    sid = json.loads(out)["hosts"]["a"]["id"]
    host_a.sh("echo 'token = abc123' > /etc/snaptest.conf && chmod 4711 /etc/hosts.allow")
    try:
        rc, out, _ = cli(capsys, "diff", "a", "-i", inv, "--json")
        assert rc == 0
        changes = {c["path"]: c for c in json.loads(out)["changes"]}
        assert changes["/etc/snaptest.conf"]["kind"] == "added"
        assert "abc123" not in out and "<redacted>" in changes["/etc/snaptest.conf"]["diff"]
        assert changes["/etc/hosts.allow"]["fields"] == ["mode"]
        rc, _, err = cli(capsys, "restore", "a", sid, "-i", inv)
        assert rc == 2 and "--yes" in err
        assert host_a.sh_rc("test -e /etc/snaptest.conf")[0] == 0
    finally:
        rc, out, _ = cli(capsys, "restore", "a", sid, "-i", inv, "--yes", "--json")
    assert rc == 0
    actions = {c["path"]: c["action"] for c in json.loads(out)["changes"]}
    assert actions["/etc/snaptest.conf"] == "removed" and actions["/etc/hosts.allow"] == "metadata"
    assert host_a.sh("stat -c %a /etc/hosts.allow").strip() == "644"
    rc, out, _ = cli(capsys, "snapshot", "a", "-i", inv)
    assert rc == 0
    rc, out, _ = cli(capsys, "snapshots", "a", "--json")
    assert rc == 0 and len(json.loads(out)["snapshots"]) == 2
    rc, out, _ = cli(capsys, "prune", "--keep", "1", "--json")
    assert rc == 0 and json.loads(out)["removed"] == [sid]
    rc, _, err = cli(capsys, "restore", "a", sid, "-i", inv, "--yes")
    assert rc == 2 and "unknown snapshot" in err


def test_host_restores_itself_without_the_controller(host_a, state) -> None:
    with host_a.transport(user="deploy") as t:  # through sudo -n
        info = take(t, ["/etc"], state)
        before = listing(t, ["/etc"])
    host_a.sh("echo changed >> /etc/issue; mkdir /etc/snapdir; rm /etc/issue.net")
    out = host_a.sh(f"/var/lib/safeapply/bin/safeapply-restore.py {info.id}")
    assert {c["path"] for c in json.loads(out)["changes"]} >= {"/etc/issue", "/etc/snapdir", "/etc/issue.net"}
    with host_a.transport() as t:
        assert compare(before, listing(t, ["/etc"])) == []
    assert host_a.sh(f"ls /var/lib/safeapply/restores/ | grep -c {info.id}").strip() == "1"
    rc, out = host_a.sh_rc("/var/lib/safeapply/bin/safeapply-restore.py 20990101T000000Z-a-0000000000000000")
    assert rc == 3 and "SAFEAPPLY-ERROR unknown" in out, out


def test_unreachable_host(tmp_path, state, capsys) -> None:
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    ghost:\n      ansible_host: 127.0.0.1\n      ansible_port: 1\n"
                   "      ansible_user: root\n")
    rc, _, err = cli(capsys, "snapshot", "ghost", "-i", str(inv))
    assert rc == 10 and "ghost" in err
    assert state.ids() == []


def test_disk_full_on_target(sandbox_factory, state, capsys) -> None:
    host = sandbox_factory("snapfull")
    host.sh("mkdir -p /var/lib/safeapply && mount -t tmpfs -o size=96k tmpfs /var/lib/safeapply")
    try:
        rc, _, err = cli(capsys, "snapshot", "snapfull", "-i", str(host.inventory))
        assert rc == 15 and "on-target" in err and "No space left" in err
        assert host.sh("find /var/lib/safeapply -type f -name '.safeapply-*' | wc -l").strip() == "0"
        assert host.sh("ls /var/lib/safeapply/host-snapshots/manifests 2>/dev/null | wc -l").strip() == "0"
        assert state.ids() == []
    finally:
        host.sh("umount /var/lib/safeapply")


def test_disk_full_on_controller(host_a, tmp_path, capsys, monkeypatch) -> None:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(mnt)], check=True)
    try:
        monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(mnt))
        rc, _, err = cli(capsys, "snapshot", "a", "-i", str(host_a.inventory))
        assert rc == 15 and "No space left" in err
        leftovers = [p for p in mnt.rglob("*") if p.is_file() and p.name != ".lock"]  # the store's own lock stays
        assert leftovers == [], leftovers  # no temp files, no manifest, no half blobs
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_corrupt_blob_changes_nothing(host_a, state, capsys) -> None:
    with host_a.transport() as t:
        sid = take(t, ["/etc"], state).id
    blob = state.blob_path(next(e["h"] for e in state.load(sid).entries if e["p"] == "/etc/issue"))
    blob.write_bytes(b"tampered\n")
    host_a.sh("cp -a /etc/issue /root/issue.keep && echo mutated >> /etc/issue")
    try:
        rc, _, err = cli(capsys, "restore", "a", sid, "-i", str(host_a.inventory), "--yes")
        assert rc == 15 and "corrupt" in err
        assert host_a.sh("tail -1 /etc/issue").strip() == "mutated"
    finally:
        host_a.sh("cp -a /root/issue.keep /etc/issue && rm /root/issue.keep")


def forged(store: Store, host: str, entries: list[dict[str, object]]) -> str:
    """A manifest whose id matches its content (so only the path checks can stop it)."""
    import datetime

    head = {"format": 1, "host": host, "created": datetime.datetime.now(datetime.UTC).isoformat(),
            "roots": ["/etc"]}
    raw = b"".join(json.dumps(x, sort_keys=True).encode() + b"\n" for x in [head, *entries])
    data = b"evil\n"
    import hashlib

    h = hashlib.sha256(data).hexdigest()
    store.put_blobs({h: data})
    for e in entries:
        e.setdefault("h", h)
    raw = b"".join(json.dumps(x, sort_keys=True).encode() + b"\n" for x in [head, *entries])
    store.save_manifest(raw)
    return snapshot_id(raw)


META = {"m": 0o644, "u": 0, "g": 0, "mt": 0, "x": {}}


@pytest.mark.parametrize("bad", [
    [{"p": "/etc", "t": "d", **META}, {"p": "/etc/../tmp/evil", "t": "f", **META}],
    [{"p": "/etc", "t": "d", **META}, {"p": "/tmp/evil", "t": "f", **META}],
    [{"p": "/etc", "t": "d", **META}, {"p": "/etc/lnk", "t": "l", "l": "/tmp", **META},
     {"p": "/etc/lnk/evil", "t": "f", **META}],
])
def test_path_traversal_manifest_is_refused(host_a, state, capsys, bad) -> None:
    sid = forged(state, "a", bad)
    before = host_a.sh("ls /etc | md5sum")
    rc, _, err = cli(capsys, "restore", "a", sid, "-i", str(host_a.inventory), "--yes")
    assert rc == 15, err  # README: a snapshot that does not verify changes nothing (exit 15)
    assert "refused an unsafe path; nothing was changed" in err and repr(bad[-1]["p"]) in err, err
    assert host_a.sh_rc("test -e /tmp/evil")[0] != 0
    assert host_a.sh("ls /etc | md5sum") == before


def test_live_symlink_in_a_parent_is_never_followed(host_a, state) -> None:
    host_a.sh("mkdir -p /etc/snapsub && echo inside > /etc/snapsub/f")
    try:
        with host_a.transport() as t:
            sid = take(t, ["/etc"], state).id
            host_a.sh("rm -rf /etc/snapsub && mkdir -p /tmp/outside && ln -s /tmp/outside /etc/snapsub")
            from safeapply.snapshot import restore

            restore(t, sid, state)
        assert host_a.sh("ls -A /tmp/outside").strip() == ""
        assert host_a.sh("stat -c %F /etc/snapsub").strip() == "directory"
        assert host_a.sh("cat /etc/snapsub/f").strip() == "inside"
    finally:
        host_a.sh("rm -rf /etc/snapsub /tmp/outside")


def test_disk_full_on_target_during_restore(sandbox_factory, state) -> None:
    from safeapply.errors import SnapshotError
    from safeapply.snapshot import restore

    host = sandbox_factory("snapfull2")
    host.sh("mkdir -p /srv/tiny && mount -t tmpfs -o size=64k tmpfs /srv/tiny && "
            "head -c 20000 /dev/urandom > /srv/tiny/a && echo original > /srv/tiny/b")
    try:
        with host.transport() as t:
            sid = take(t, ["/srv/tiny"], state).id
            host.sh("rm /srv/tiny/a && echo changed > /srv/tiny/b && "
                    "(dd if=/dev/zero of=/srv/tiny/fill bs=1k count=100 2>/dev/null || true)")
            with pytest.raises(SnapshotError, match="nothing was changed"):
                restore(t, sid, state)
            assert host.sh("cat /srv/tiny/b").strip() == "changed"
            assert host.sh("ls -A /srv/tiny").split() == ["b", "fill"]
            host.sh("rm /srv/tiny/fill")
            before = host.sh("sha256sum /srv/tiny/b")
            report = restore(t, sid, state)
        assert {c["path"] for c in report.changes} >= {"/srv/tiny/a", "/srv/tiny/b"}
        assert before != host.sh("sha256sum /srv/tiny/b")
        assert host.sh("cat /srv/tiny/b").strip() == "original"
    finally:
        host.sh("umount /srv/tiny")


def test_several_hosts_in_parallel(host_a, host_b, state, capsys) -> None:
    rc, out, _ = cli(capsys, "snapshot", "all", "-i", str(host_a.inventory), "-i", str(host_b.inventory), "--json")
    assert rc == 0
    assert set(json.loads(out)["hosts"]) == {"a", "b"}
    rc, out, _ = cli(capsys, "snapshots", "--json")
    assert rc == 0 and {s["host"] for s in json.loads(out)["snapshots"]} == {"a", "b"}


def test_bind_mounted_file_is_rewritten_in_place(host_a, state) -> None:
    """Containers bind-mount /etc/hosts and friends: rename over a mount point fails, so write in place."""
    from safeapply.snapshot import restore

    host_a.sh("echo orig > /root/bound && touch /etc/snapbound && mount --bind /root/bound /etc/snapbound")
    try:
        with host_a.transport() as t:
            sid = take(t, ["/etc"], state).id
            host_a.sh("echo changed > /etc/snapbound")
            report = restore(t, sid, state)
        assert [c["path"] for c in report.changes if c["action"] != "metadata"] == ["/etc/snapbound"]
        assert host_a.sh("cat /etc/snapbound").strip() == "orig"
        assert host_a.sh("findmnt -n /etc/snapbound | wc -l").strip() == "1"
    finally:
        host_a.sh("umount /etc/snapbound; rm -f /etc/snapbound /root/bound")
