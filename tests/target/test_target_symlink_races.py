"""Issue 11 item 11: the snapshot program never follows a symlink that an account owning a directory under a
root swaps in. A race cannot be timed in a test, so each test stops the clock where the race would win:
the state was read (lstat, the restore's scan), then the account swaps a symlink in, then the program acts."""

import hashlib
import os
import tempfile
import unittest

from safeapply.target.errors import TargetError
from safeapply.target.snapshot.apply import Restorer
from safeapply.target.snapshot.packs import Packs
from safeapply.target.snapshot.scan import Hasher, scan

NOBODY = 65534


class SymlinkRaceTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.root = os.path.join(self.tmp.name, "etc").encode()
        self.user_dir = os.path.join(self.root, b"home")  # owned by an unprivileged account
        os.makedirs(self.user_dir)
        self.secret = os.path.join(self.tmp.name, "shadow").encode()  # root-only, outside the root
        with open(self.secret, "wb") as f:
            f.write(b"root:$6$secret-hash:19000:0:99999:7:::\n")
        os.chmod(self.secret, 0o600)
        self.victim = os.path.join(self.tmp.name, "victim").encode()  # a root program, not setuid
        with open(self.victim, "wb") as f:
            f.write(b"#!/bin/sh\n")
        os.chmod(self.victim, 0o755)

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def test_restore_does_not_chmod_through_a_swapped_in_symlink(self) -> None:
        f = os.path.join(self.user_dir, b"tool")
        with open(f, "wb") as out:
            out.write(b"tool\n")
        os.chmod(f, 0o4755)  # setuid when the snapshot was taken
        want = list(scan([self.root], Hasher(None)))
        os.chmod(f, 0o755)  # changed since: the restore will put the mode back
        cur = {e["p"]: e for e in scan([self.root], Hasher(None), inodes=True)}
        os.chown(self.user_dir, NOBODY, NOBODY)
        os.unlink(f)  # the account owning the directory swaps in a symlink to a root file
        os.symlink(self.victim, f)
        base = os.path.join(self.tmp.name, "base").encode()
        with self.assertRaises(TargetError):  # it stops (partial: run it again) rather than follow the link
            Restorer(Packs(base), [self.root], want, cur).run()
        self.assertEqual(os.stat(self.victim).st_mode & 0o7777, 0o755)

    def test_snapshot_does_not_read_a_swapped_in_symlink(self) -> None:
        f = os.path.join(self.user_dir, b"notes")
        with open(f, "wb") as out:
            out.write(b"mine\n")
        seen = os.lstat(f)  # the walk saw a regular file of the account's
        os.unlink(f)
        os.symlink(self.secret, f)  # ... which became a symlink to a root-only file
        with self.assertRaises(OSError):
            Hasher(None).file(f, seen)

    def test_snapshot_records_a_symlink_to_a_secret_as_a_symlink(self) -> None:
        os.symlink(self.secret, os.path.join(self.user_dir, b"shadow"))
        with open(self.secret, "rb") as s:
            secret_hash = hashlib.sha256(s.read()).hexdigest()
        entries = {e["p"]: e for e in scan([self.root], Hasher(None))}
        link = entries[os.path.join(self.user_dir, b"shadow").decode()]
        self.assertEqual((link["t"], link["l"]), ("l", self.secret.decode()))
        self.assertNotIn(secret_hash, {e.get("h") for e in entries.values()})


if __name__ == "__main__":
    unittest.main()
