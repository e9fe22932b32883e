"""Old versions of the installed package go, except the newest, the current one and those still named."""

import os
import tempfile
import unittest
from unittest import mock

from safeapply.target import layout, versions


class VersionsTest(unittest.TestCase):
    def test_referenced(self) -> None:
        service = "ExecStart=/usr/bin/python3 /var/lib/safeapply/target/aa.pyz deadman.fire r\n"
        launcher = "sys.path.insert(0, '/var/lib/safeapply/target/bb.pyz')\n"
        self.assertEqual(versions.referenced([service, launcher, "nothing"], "/var/lib/safeapply/target"),
                         {"aa.pyz", "bb.pyz"})

    def test_prune(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            for i, name in enumerate(["v0", "v1", "v2", "v3", "v4", "v5", "v6"]):
                path = os.path.join(d, name + ".pyz")
                open(path, "w").close()
                os.utime(path, (1000 + i, 1000 + i))
            for name, age in ((layout.TMP_PREFIX + "old.tmp", 2 * 86400), (layout.TMP_PREFIX + "new.tmp", 10)):
                path = os.path.join(d, name)
                open(path, "w").close()
                os.utime(path, (1e9 - age, 1e9 - age))
            armed = f"ExecStart=/usr/bin/python3 {d}/v1.pyz deadman.fire r\n"
            with mock.patch.object(versions, "users", lambda: [armed]):
                dropped = versions.prune(d, "v0", now=1e9)
            self.assertEqual(sorted(dropped), sorted(["v2.pyz", "v3.pyz", layout.TMP_PREFIX + "old.tmp"]))
            self.assertEqual(sorted(os.listdir(d)),
                             sorted(["v0.pyz", "v1.pyz", "v4.pyz", "v5.pyz", "v6.pyz", layout.TMP_PREFIX + "new.tmp"]))


if __name__ == "__main__":
    unittest.main()
