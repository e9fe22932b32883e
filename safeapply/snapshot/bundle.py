"""The program that runs on the target: the modules of `target/` joined into one stdlib-only script and
wrapped in a short `python3 -c` bootstrap (which also hands the script its own source, so it can install
itself as BASE/bin/safeapply-restore.py)."""

from __future__ import annotations

import base64
import re
import zlib
from functools import cache
from importlib import resources

PARTS = ("common.py", "packs.py", "scan.py", "safety.py", "apply.py", "main.py")
_OWN_IMPORT = re.compile(r"^\s*from safeapply\.snapshot\.target\.\w+ import ")


def _strip(text: str) -> list[str]:
    out: list[str] = []
    skipping = False
    for line in text.splitlines():
        if skipping:
            skipping = not line.strip().endswith(")")
            continue
        if line.startswith("from __future__"):
            continue
        if _OWN_IMPORT.match(line):
            skipping = line.rstrip().endswith("(")
            continue
        out.append(line)
    return out


@cache
def source() -> str:
    """The single-file target program."""
    pkg = resources.files("safeapply.snapshot.target")
    lines = ["from __future__ import annotations"]
    for part in PARTS:
        lines += _strip(pkg.joinpath(part).read_text())
    return "\n".join(lines) + "\n"


@cache
def bootstrap() -> str:
    """Code for `python3 -c`: decompress the program and run it as __main__."""
    packed = base64.b64encode(zlib.compress(source().encode(), 9)).decode()
    return (f"import base64,zlib;SRC=zlib.decompress(base64.b64decode('{packed}')).decode();"
            "exec(compile(SRC,'safeapply-target','exec'))")
