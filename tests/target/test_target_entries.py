"""The one error protocol: a TargetError is one `SAFEAPPLY-ERROR kind message` line and exit 3, a crash its
traceback, an `internal` line and exit 1, an unknown entry a `usage` line and exit 2."""

import io
import unittest
from unittest import mock

from safeapply.target import entries
from safeapply.target.errors import TargetError, fail_line

from target_helpers import run_entry


class EntriesTest(unittest.TestCase):
    def test_every_entry_resolves_to_a_function(self) -> None:
        for name in entries.ENTRIES:
            self.assertTrue(callable(entries.entry(name)), name)

    def call(self, fn: object, argv: list) -> tuple:
        err = io.StringIO()
        with mock.patch.dict(entries.ENTRIES, {"t.x": ("lock", "x")}), mock.patch("sys.stderr", err), \
                mock.patch("safeapply.target.lock.x", fn, create=True):
            rc = entries.main(argv)
        return rc, err.getvalue()

    def test_target_error_is_one_line_and_exit_3(self) -> None:
        def boom(args: list) -> int:
            raise TargetError("store", "disk\nfull")

        self.assertEqual(self.call(boom, ["t.x"]), (3, "SAFEAPPLY-ERROR store disk full\n"))

    def test_crash_is_internal_and_exit_1(self) -> None:
        def crash(args: list) -> int:
            return {}["nope"]  # type: ignore[no-any-return]

        rc, err = self.call(crash, ["t.x"])
        self.assertEqual(rc, 1)
        self.assertIn("Traceback", err)
        self.assertTrue(err.endswith("SAFEAPPLY-ERROR internal KeyError: 'nope'\n"), err)

    def test_unknown_entry(self) -> None:
        rc, out, err = run_entry(["lock.steal", "x"])
        self.assertEqual((rc, out), (2, b""))
        self.assertTrue(err.startswith("SAFEAPPLY-ERROR usage unknown entry 'lock.steal'; one of: probe.collect"), err)

    def test_fail_line_is_one_line(self) -> None:
        err = io.StringIO()
        with mock.patch("sys.stderr", err):
            fail_line("deadman", "a\nb")
        self.assertEqual(err.getvalue(), "SAFEAPPLY-ERROR deadman a b\n")


if __name__ == "__main__":
    unittest.main()
