"""The dead-man's switch's on-host program, its pure parts and its error line (arming needs systemd: see
tests/test_deadman.py on sandbox hosts)."""

import unittest

from safeapply.target import deadman, layout

from target_helpers import run_entry


class DeadmanTest(unittest.TestCase):
    def test_units_and_paths(self) -> None:
        timer = deadman.timer_text("r1", 300, 7_000_000)
        self.assertIn("OnStartupSec=7000000ms\nOnActiveSec=300s\n", timer)  # the host's monotonic clock only
        self.assertNotIn("OnCalendar", timer)
        self.assertIn("Unit=safeapply-deadman-r1.service", timer)
        self.assertEqual(deadman.parse_timespan("2min 3.5s"), 123.5)
        service = deadman.service_text("r1", "/usr/bin/python3", "/var/lib/safeapply/target/ab.pyz")
        self.assertIn("ExecStart=/usr/bin/python3 /var/lib/safeapply/target/ab.pyz deadman.fire r1\n", service)
        p = deadman.paths("r1")
        self.assertEqual(p["state"], layout.DEADMAN_DIR + "/r1")
        self.assertEqual(p["timer"], layout.UNIT_DIR + "/safeapply-deadman-r1.timer")
        self.assertEqual(p["wants"], layout.TIMERS_WANTS + "/safeapply-deadman-r1.timer")

    def test_bad_run_id(self) -> None:
        for bad in ("../../etc/x", "", "a b", "x" * 81):
            with self.assertRaises(deadman.Fail) as cm:
                deadman.unit_name(bad)
            self.assertEqual(cm.exception.kind, "deadman")

    def test_error_line(self) -> None:
        rc, out, err = run_entry(["deadman.status", "../x"])
        self.assertEqual((rc, out, err), (3, b"", "SAFEAPPLY-ERROR deadman bad run id '../x'\n"))
        rc, out, err = run_entry(["deadman.extend"])  # a missing argument is the switch's error too
        self.assertEqual((rc, out), (3, b""))
        self.assertTrue(err.startswith("SAFEAPPLY-ERROR deadman "), err)


if __name__ == "__main__":
    unittest.main()
