"""The bootstrap (the only code sent as source): version, an atomic checked install, a call that says when
the package is missing. Run as `python3 -c <its source>`, exactly as a host runs it."""

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import types
import unittest
import zipfile
from typing import List, Tuple
from unittest import mock

from safeapply.target import bootstrap
from safeapply.target.bootstrap import MIN_PYTHON

from target_helpers import REPO

with open(os.path.join(REPO, "safeapply", "target", "bootstrap.py")) as _f:
    SOURCE = _f.read()
ENTRIES = "import sys\n\ndef main(argv):\n    sys.stdout.write(repr(argv))\n    return len(argv)\n"


def boot(args: List[str], stdin: bytes = b"") -> Tuple[int, str, str]:
    p = subprocess.run([sys.executable, "-c", SOURCE, *args], input=stdin, capture_output=True, timeout=60,
                       check=False, cwd="/")
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def package() -> bytes:
    """A stand-in package: its `entries.main` echoes its arguments."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("safeapply/__init__.py", "")
        z.writestr("safeapply/target/__init__.py", "")
        z.writestr("safeapply/target/entries.py", ENTRIES)
    return buf.getvalue()


class BootstrapTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = os.path.join(self.tmp.name, "lib", "target")

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def test_version(self) -> None:
        rc, out, err = boot(["version"])
        self.assertEqual((rc, out, err), (0, "{}.{}.{}\n".format(*sys.version_info[:3]), ""))
        self.assertGreaterEqual(sys.version_info[:2], MIN_PYTHON)

    def test_install_then_call(self) -> None:
        data = package()
        rc, _out, err = boot(["call", self.dir, "v1", "x.y", "a"])
        self.assertEqual(rc, 3)
        self.assertEqual(err, f"SAFEAPPLY-ERROR not-installed {self.dir}/v1.pyz\n")
        rc, out, err = boot(["install", self.dir, "v1", hashlib.sha256(data).hexdigest()], data)
        self.assertEqual((rc, out, err), (0, "", ""))
        self.assertEqual(os.listdir(self.dir), ["v1.pyz"])  # no temp file left
        self.assertEqual(os.stat(os.path.join(self.dir, "v1.pyz")).st_mode & 0o777, 0o644)
        rc, out, err = boot(["call", self.dir, "v1", "x.y", "a", "b c"])
        self.assertEqual((rc, out, err), (3, "['x.y', 'a', 'b c']", ""))

    def test_a_damaged_copy_is_removed_to_be_sent_again(self) -> None:
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, "v1.pyz"), "wb") as f:
            f.write(b"not a zip")
        rc, _out, err = boot(["call", self.dir, "v1", "x.y"])
        self.assertEqual((rc, err), (3, f"SAFEAPPLY-ERROR not-installed {self.dir}/v1.pyz (damaged, removed)\n"))
        self.assertEqual(os.listdir(self.dir), [])

    def test_damaged_package_is_refused(self) -> None:
        data = package()
        rc, _out, err = boot(["install", self.dir, "v1", hashlib.sha256(data).hexdigest()], data[:-10])
        self.assertEqual(rc, 3)
        self.assertTrue(err.startswith("SAFEAPPLY-ERROR install the package for version v1 arrived damaged"), err)
        self.assertFalse(os.path.exists(self.dir))

    def test_unwritable_install_dir(self) -> None:
        data = package()
        blocker = os.path.join(self.tmp.name, "file")
        open(blocker, "w").close()
        rc, _out, err = boot(["install", os.path.join(blocker, "target"), "v1", hashlib.sha256(data).hexdigest()],
                             data)
        self.assertEqual(rc, 3)
        self.assertIn("SAFEAPPLY-ERROR install cannot install safeapply's on-target programs under", err)
        self.assertEqual(os.listdir(self.tmp.name), ["file"])

    def test_usage(self) -> None:
        rc, _out, err = boot(["nonsense"])
        self.assertEqual(rc, 3)
        self.assertTrue(err.startswith("SAFEAPPLY-ERROR usage "), err)

    def test_too_old_is_one_line(self) -> None:
        host = types.SimpleNamespace(version_info=(3, 7, 16, "final", 0), stdout=io.StringIO(), stderr=io.StringIO())
        with mock.patch.object(bootstrap, "sys", host):
            self.assertEqual([bootstrap.main([op, self.dir, "v", "x"]) for op in ("version", "call", "install")],
                             [3, 3, 3])
        line = "SAFEAPPLY-ERROR python python3 on the target is 3.7.16; safeapply needs 3.8 or newer\n"
        self.assertEqual((host.stdout.getvalue(), host.stderr.getvalue()), ("", line * 3))

if __name__ == "__main__":
    unittest.main()
