"""The probe on this machine: one JSON document with every section the controller's parsers read."""

import json
import sys
import unittest

from safeapply.target import probe

from target_helpers import REPO, run_entry


class ProbeTest(unittest.TestCase):
    def test_collect_has_every_section(self) -> None:
        rc, out, err = run_entry(["probe.collect"])
        self.assertEqual(rc, 0, err)
        doc = json.loads(out)
        self.assertEqual(sorted(doc), ["containers", "facts", "monotonic_us", "proc_net", "processes", "quadlet_images",
                                       "quadlets", "socket_owners", "units", "version"])
        self.assertEqual(doc["facts"]["python"], "{}.{}.{}".format(*sys.version_info[:3]))

    def test_its_source_runs_alone(self) -> None:
        import subprocess

        with open(REPO + "/safeapply/target/probe.py", "rb") as f:
            src = f.read()
        p = subprocess.run([sys.executable, "-"], input=src, capture_output=True, timeout=60, check=True, cwd="/")
        self.assertEqual(json.loads(p.stdout)["version"], probe.PROBE_VERSION)

    def test_listening_inodes(self) -> None:
        tcp = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
               "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111\n"
               "   1: 0100007F:1F91 0100007F:9999 01 00000000:00000000 00:00000000 00000000     0        0 222\n")
        self.assertEqual(probe.listening_inodes({"tcp": tcp, "udp": None}), {"111"})


if __name__ == "__main__":
    unittest.main()
