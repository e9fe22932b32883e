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
            10: tasks.Proc(b"python3\0/root/.ansible/tmp/ansible-tmp-1700000100.5-77-123/AnsiballZ_command.py\0", 1),
            11: tasks.Proc(b"sleep\x00600\x00", 10),  # a child of the task
            12: tasks.Proc(b"sh\x00-c\x00sleep 1\x00", 11),  # and its child
            20: tasks.Proc(b"python3\0/root/.ansible/tmp/ansible-tmp-1600000000-1-2/x.py\0", 1),  # an older run's
            30: tasks.Proc(b"sshd\0", 1),
        }
        self.assertEqual(tasks.the_runs(procs, 1700000000.0), {10, 11, 12})
        self.assertEqual(tasks.the_runs(procs, 1800000000.0), set())

    def test_with_a_mark_another_controllers_ansible_is_left_alone(self) -> None:
        """Issue 11 item 13: a newer ansible-tmp directory may be another controller's run: not ours to stop."""
        procs = {
            10: tasks.Proc(b"python3\0/root/.ansible/tmp/ansible-tmp-1700000100.5-77-123/AnsiballZ_command.py\0", 1),
            11: tasks.Proc(b"sleep\x00600\x00", 10),
            40: tasks.Proc(b"/usr/bin/python3\0/root/.ansible/tmp/ansible-tmp-1700000200-1-2/x.py\0", 1,
                           b"SAFEAPPLY_RUN=r-1\0"),
        }
        self.assertEqual(tasks.the_runs(procs, 1700000000.0, "r-1"), {40})

    def test_the_runs_marked_processes_with_pipelining(self) -> None:
        """No ansible-tmp path: the shell that starts a pipelined module names the mark, its module and the
        module's children (and a daemonized async job) carry it in their environment."""
        procs = {
            40: tasks.Proc(b"/bin/sh\0-c\0sudo -H -S -n -u root /bin/sh -c 'echo BECOME-SUCCESS-x ; "
                           b"SAFEAPPLY_RUN=r-1 /usr/bin/python3' && sleep 0\0", 1),
            41: tasks.Proc(b"sudo\0-H\0", 40),
            42: tasks.Proc(b"/usr/bin/python3\0", 41, b"HOME=/root\0SAFEAPPLY_RUN=r-1\0"),
            43: tasks.Proc(b"sleep\0600\0", 42, b"SAFEAPPLY_RUN=r-1\0"),
            50: tasks.Proc(b"sleep\0600\0", 1, b"SAFEAPPLY_RUN=r-1\0"),  # escaped to init: still the run's
            60: tasks.Proc(b"/bin/sh\0-c\0SAFEAPPLY_RUN=r-10 /usr/bin/python3\0", 1),  # another run's
            61: tasks.Proc(b"sleep\0600\0", 60, b"SAFEAPPLY_RUN=r-10\0SUDO_COMMAND=SAFEAPPLY_RUN=r-1\0"),
            70: tasks.Proc(b"sshd: root@notty\0", 1),
        }
        self.assertEqual(tasks.the_runs(procs, 4000000000.0, "r-1"), {40, 41, 42, 43, 50})
        self.assertEqual(tasks.the_runs(procs, 4000000000.0, ""), set())

    def test_a_containers_conmon_is_left_to_the_engine(self) -> None:
        """podman's conmon inherits the mark from the task's `podman run` (podman 5): killing it would leave a
        container that `podman rm -f` cannot remove any more; rollback removes the container through podman."""
        procs = {
            42: tasks.Proc(b"/usr/bin/python3\0", 1, b"SAFEAPPLY_RUN=r-1\0"),
            43: tasks.Proc(b"/usr/bin/podman\0run\0-d\0", 42, b"SAFEAPPLY_RUN=r-1\0"),
            44: tasks.Proc(b"/usr/bin/conmon\0--api-version\0" b"1\0", 43, b"SAFEAPPLY_RUN=r-1\0"),
            45: tasks.Proc(b"httpd\0-f\0", 44),  # the container's process
            50: tasks.Proc(b"/usr/bin/conmon\0--api-version\0" b"1\0", 1, b"SAFEAPPLY_RUN=r-1\0"),
            51: tasks.Proc(b"/usr/lib/podman/aardvark-dns\0--config\0", 1, b"SAFEAPPLY_RUN=r-1\0"),
        }
        self.assertEqual(tasks.the_runs(procs, 4000000000.0, "r-1"), {42, 43})

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
            with open(os.path.join(proc, "3999995", "environ"), "wb") as f:
                f.write(b"A=1\0")
            self.assertEqual(tasks.processes(proc),
                             {3999995: (b"a\0b\0", 1, b"A=1\0"), 3999996: (b"c\0", 3999995, b"")})

    def test_a_left_running_task_is_stopped(self) -> None:
        since = 4000000000.0  # a run "started" in 2096: nothing else on this machine is its
        with tempfile.TemporaryDirectory() as d:
            task = os.path.join(d, "ansible-tmp-4000000001.25-1-x")
            os.mkdir(task)
            p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", task])
            self._stopped(p, [repr(since)])

    def test_a_marked_task_is_stopped(self) -> None:
        """A pipelined module's process: no ansible-tmp path, the run's mark in its environment."""
        mark = f"test-{os.getpid()}-{time.time_ns()}"
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                             env={**os.environ, "SAFEAPPLY_RUN": mark})
        self._stopped(p, ["4000000000.0", mark])

    def _stopped(self, p: "subprocess.Popen[bytes]", args: list) -> None:
        try:
            rc, out, err = run_entry(["tasks.stop", *args])
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
