"""The snapshot program on temp dirs: a scan that keeps the host's own copy, a restore with no controller
through the launcher it leaves behind, and a manifest with an unsafe path refused before any change."""

import io
import json
import os
import subprocess
import sys
import tempfile
import unittest
import zlib

from safeapply.target import layout
from safeapply.target.errors import TargetError
from safeapply.target.snapshot.common import snapshot_id, unpack
from safeapply.target.snapshot.safety import check_manifest

from target_helpers import REPO, run_entry


class SnapshotTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.root = os.path.join(self.tmp.name, "etc")
        self.base = os.path.join(self.tmp.name, "base")
        os.makedirs(os.path.join(self.root, "sub"))
        for name, text in (("a.conf", "one\n"), ("sub/b.conf", "two\n")):
            with open(os.path.join(self.root, name), "w") as f:
                f.write(text)
        os.symlink("a.conf", os.path.join(self.root, "lnk"))

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def scan(self) -> str:
        rc, out, err = run_entry(["snapshot.scan", "--base", self.base, "--host", "h", "--root", self.root,
                                  "--stream"])
        self.assertEqual(rc, 0, err)
        stream, recs = io.BytesIO(out), []
        while True:
            tag, name, data = unpack(stream)
            if tag == b"E":
                break
            recs.append((tag, name, data))
        self.assertEqual(sorted(t for t, _n, _d in recs), [b"B", b"B", b"M"])
        manifest = zlib.decompress(recs[-1][2])
        paths = [json.loads(x)["p"] for x in manifest.splitlines()[1:]]
        self.assertEqual(paths, [self.root + p for p in ("", "/a.conf", "/lnk", "/sub", "/sub/b.conf")])
        return snapshot_id(manifest)

    def test_scan_then_the_host_restores_itself(self) -> None:
        sid = self.scan()
        self.assertTrue(os.path.exists(os.path.join(self.base, "host-snapshots", "manifests", sid + ".jsonl")))
        launcher = os.path.join(self.base, layout.RESTORE_PROGRAM)
        self.assertTrue(os.access(launcher, os.X_OK))
        with open(launcher) as f:
            self.assertIn(repr(REPO), f.read())  # runs the package it was written by
        with open(os.path.join(self.root, "a.conf"), "w") as f:
            f.write("changed\n")
        os.unlink(os.path.join(self.root, "lnk"))
        os.mkdir(os.path.join(self.root, "new"))
        p = subprocess.run([sys.executable, launcher, sid], capture_output=True, timeout=60, check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        actions = {c["path"][len(self.root):]: c["action"] for c in json.loads(p.stdout)["changes"]}
        self.assertEqual(actions, {"/a.conf": "replaced", "/lnk": "created", "/new": "removed", "": "metadata"})
        with open(os.path.join(self.root, "a.conf")) as f:
            self.assertEqual(f.read(), "one\n")
        self.assertEqual(len(os.listdir(os.path.join(self.base, "restores"))), 1)
        p = subprocess.run([sys.executable, launcher, "20990101T000000Z-h-0000000000000000"], capture_output=True,
                           timeout=60, check=False)
        self.assertEqual(p.returncode, 3)
        self.assertTrue(p.stderr.startswith(b"SAFEAPPLY-ERROR unknown snapshot 20990101T000000Z-h-"), p.stderr)

    def test_unsafe_manifest_is_refused(self) -> None:
        roots = [b"/etc"]
        for entries in ([{"p": "/etc", "t": "d"}, {"p": "/etc/../root/x", "t": "f"}],
                        [{"p": "/etc", "t": "d"}, {"p": "/tmp/x", "t": "f"}],
                        [{"p": "/etc", "t": "d"}, {"p": "/etc/a/b", "t": "f"}]):
            with self.assertRaises(TargetError) as cm:
                check_manifest(roots, entries)
            self.assertEqual(cm.exception.kind, "unsafe")

    def test_an_id_is_never_a_path(self) -> None:
        """Issue 11 item 14: the id names a manifest under the base; `../` in it must not reach anywhere else."""
        with tempfile.TemporaryDirectory() as base:
            for sid in ("../../../tmp/x", "20261130T010101Z-h-0123456789abcdef/../../x", ""):
                rc, _out, err = run_entry(["snapshot.restore", "--base", base, "--id", sid])
                self.assertEqual(rc, 3, err)
                self.assertIn("SAFEAPPLY-ERROR usage", err)
                self.assertIn("is not a snapshot id", err)


if __name__ == "__main__":
    unittest.main()
