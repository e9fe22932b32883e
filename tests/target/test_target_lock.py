"""The run lock's on-host half on temp dirs: two holders, release, a stale holder taken over."""

import json
import os
import tempfile
import unittest

from safeapply.target import lock

from target_helpers import run_entry


class LockTest(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "run", "lock")

    def tearDown(self) -> None:
        self.dir.cleanup()

    def test_second_holder_is_told_who_holds_it(self) -> None:
        self.assertEqual(lock.try_acquire(self.path, {"run_id": "r1", "pid": 1}), {})
        self.assertEqual(oct(os.stat(self.path).st_mode & 0o777), oct(0o700))
        self.assertEqual(lock.try_acquire(self.path, {"run_id": "r2"}), {"run_id": "r1", "pid": 1})
        self.assertTrue(lock.try_release(self.path, "r1"))
        self.assertFalse(os.path.exists(self.path))
        self.assertEqual(lock.try_acquire(self.path, {"run_id": "r2"}), {})

    def test_stale_holder_is_taken_over_and_only_that_one(self) -> None:
        lock.try_acquire(self.path, {"run_id": "old"})
        self.assertEqual(lock.try_acquire(self.path, {"run_id": "new"}, stale="other"), {"run_id": "old"})
        self.assertEqual(lock.try_acquire(self.path, {"run_id": "new"}, stale="old"), {})
        self.assertFalse(lock.try_release(self.path, "old"))  # taken over: the old run leaves it alone
        self.assertEqual(lock.held(self.path)["run_id"], "new")

    def test_unreadable_owner(self) -> None:
        os.makedirs(self.path)
        self.assertEqual(lock.try_acquire(self.path, {"run_id": "r"}), {"run_id": "?"})
        self.assertTrue(lock.try_release(self.path, "r"))  # no owner file: removed
        self.assertFalse(os.path.exists(self.path))

    def test_entries(self) -> None:
        owner = json.dumps({"run_id": "r1", "controller": "c", "pid": 7})
        rc, out, _err = run_entry(["lock.acquire", self.path, owner, ""])
        self.assertEqual((rc, json.loads(out)), (0, {"acquired": True, "held": {}}))
        rc, out, _err = run_entry(["lock.acquire", self.path, json.dumps({"run_id": "r2"}), ""])
        self.assertEqual(json.loads(out), {"acquired": False, "held": {"run_id": "r1", "controller": "c", "pid": 7}})
        rc, out, _err = run_entry(["lock.release", self.path, "r1"])
        self.assertEqual((rc, json.loads(out)), (0, {"released": True}))
        self.assertFalse(os.path.exists(self.path))


if __name__ == "__main__":
    unittest.main()
