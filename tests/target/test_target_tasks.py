"""Stopping what a run left running: the pure process-tree walk, and a real process stopped."""

import os
import subprocess
import sys
import tempfile
import time
import unittest

from safeapply.target import tasks

from target_helpers import run_entry


class TasksTest(unittest.TestCase):
    def test_the_runs_processes_and_their_descendants(self) -> None:
        procs = {
            10: (b"python3\0/root/.ansible/tmp/ansible-tmp-1700000100.5-77-123/AnsiballZ_command.py\0", 1),
            11: (b"sleep\x00600\x00", 10),  # a child of the task
            12: (b"sh\x00-c\x00sleep 1\x00", 11),  # and its child
            20: (b"python3\0/root/.ansible/tmp/ansible-tmp-1600000000-1-2/x.py\0", 1),  # an older run's
            30: (b"sshd\0", 1),
        }
        self.assertEqual(tasks.the_runs(procs, 1700000000.0), {10, 11, 12})
        self.assertEqual(tasks.the_runs(procs, 1800000000.0), set())

    def test_processes_from_a_proc_tree(self) -> None:
        with tempfile.TemporaryDirectory() as proc:
            rows = ((3999995, b"a\0b\0", "3999995 (a b) S 1 5"), (3999996, b"c\0", "3999996 (c) S 3999995 6"),
                    (3999997, b"", "bad"))
            for pid, cmd, stat in rows:
                os.mkdir(os.path.join(proc, str(pid)))
                with open(os.path.join(proc, str(pid), "cmdline"), "wb") as f:
                    f.write(cmd)
                with open(os.path.join(proc, str(pid), "stat"), "w") as f:
                    f.write(stat)
            os.mkdir(os.path.join(proc, "self"))
            self.assertEqual(tasks.processes(proc), {3999995: (b"a\0b\0", 1), 3999996: (b"c\0", 3999995)})

    def test_a_left_running_task_is_stopped(self) -> None:
        since = 4000000000.0  # a run "started" in 2096: nothing else on this machine is its
        with tempfile.TemporaryDirectory() as d:
            task = os.path.join(d, "ansible-tmp-4000000001.25-1-x")
            os.mkdir(task)
            p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", task])
            try:
                rc, out, err = run_entry(["tasks.stop", repr(since)])
                self.assertEqual((rc, out.strip()), (0, b"1"), err)
                deadline = time.monotonic() + 10
                while p.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.assertIsNotNone(p.poll())
            finally:
                p.kill()
                p.wait()


if __name__ == "__main__":
    unittest.main()
