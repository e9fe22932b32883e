"""The controller's side of `safeapply.target`: bundle it, install it on a host once per version, call its
entries by name, and turn its `SAFEAPPLY-ERROR <kind> <message>` lines into safeapply errors (in one place).

    out = call(transport, "lock.acquire", [path, owner, ""], sudo=True, timeout=60)

Every call sends only `safeapply/target/bootstrap.py` (`python3 -c`, about 4 KB) and the version to run. When the
host lacks that version, the bootstrap says so before reading stdin; the zip is then sent once (checked,
written beside its name, renamed: /var/lib/safeapply/target/<version>.pyz for root) and the call repeated.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import BinaryIO

from safeapply.errors import NoPythonError, SafeapplyError, SnapshotError, UnreachableError, UsageError
from safeapply.target import layout
from safeapply.target.errors import ERROR
from safeapply.transport.base import Result, Transport
from safeapply.transport.idle import Stalled, idle_limit

INSTALL_TIMEOUT = 120.0
_STUB = '"""safeapply\'s on-host package only: see safeapply/target."""\n'
_MAIN = "import runpy\n\nrunpy.run_module('safeapply.target', run_name='__main__', alter_sys=True)\n"


# ---- the bundle -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bundle:
    version: str  # hash of the package's sources: the name it is installed under
    data: bytes  # the zip (a zipapp: `python3 <version>.pyz ENTRY ARGS` runs it)
    sha256: str  # of `data`: the host checks what arrived


def _sources(node: Traversable, prefix: str) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for child in node.iterdir():
        if child.is_dir() and child.name != "__pycache__":
            out += _sources(child, f"{prefix}{child.name}/")
        elif child.name.endswith(".py"):
            out.append((prefix + child.name, child.read_bytes()))
    return out


@cache
def bundle() -> Bundle:
    """The package as one deterministic zip, with a stub `safeapply/__init__.py` and a `__main__.py`."""
    files = sorted(_sources(resources.files("safeapply.target"), "safeapply/target/"))
    files += [("safeapply/__init__.py", _STUB.encode()), ("__main__.py", _MAIN.encode())]
    version = hashlib.sha256(b"".join(b"%s\0%d\0%s" % (n.encode(), len(d), d) for n, d in sorted(files)))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            z.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    data = buf.getvalue()
    return Bundle(version.hexdigest()[:16], data, hashlib.sha256(data).hexdigest())


@cache
def bootstrap_source() -> str:
    return resources.files("safeapply.target").joinpath("bootstrap.py").read_text()


# ---- calls ------------------------------------------------------------------------------------------------

def _boot(t: Transport, args: Sequence[str], *, sudo: bool, stdin: bytes | None = None,
          stdout: BinaryIO | None = None, timeout: float | None = None) -> Result:
    return t.python(bootstrap_source(), args=list(args), sudo=sudo, stdin=stdin, stdout=stdout, timeout=timeout)


def install_dir(t: Transport, sudo: bool) -> str:
    return layout.install_dir(as_root=sudo or t.user == "root")


def call(t: Transport, entry: str, args: Sequence[str] = (), *, sudo: bool = True, stdin: bytes | None = None,
         stdout: BinaryIO | None = None, timeout: float | None = None, idle: float | None = None) -> bytes:
    """Run `entry` of the on-host package (as root with `sudo`), installing the package first if the host lacks
    this version. Returns its stdout (b"" when streamed into `stdout`); a failure raises the mapped error.
    `idle`: end the call (UnreachableError, exit 10) once no byte went either way for that many seconds."""
    b = bundle()
    argv = ["call", install_dir(t, sudo), b.version, entry, *args]
    try:
        with idle_limit(idle):
            res = _boot(t, argv, sudo=sudo, stdin=stdin, stdout=stdout, timeout=timeout)
            if res.rc == 3 and _kind_of(res.stderr) == "not-installed":  # nothing ran, stdin unread: install, again
                install(t, sudo=sudo)
                res = _boot(t, argv, sudo=sudo, stdin=stdin, stdout=stdout, timeout=timeout)
    except Stalled as e:
        raise UnreachableError(f"{t.name}: {entry} sent and read nothing for {idle:g}s (the host hangs?)",
                               e.hint) from e
    if res.rc != 0:
        raise error(t.name, entry, res.rc, res.stderr)
    return res.stdout


def install(t: Transport, *, sudo: bool = True) -> str:
    """Send this version of the package to the host (one round trip); returns its version."""
    b = bundle()
    res = _boot(t, ["install", install_dir(t, sudo), b.version, b.sha256], sudo=sudo, stdin=b.data,
                timeout=INSTALL_TIMEOUT)
    if res.rc != 0:
        raise error(t.name, "install", res.rc, res.stderr)
    return b.version


def python_version(t: Transport) -> str:
    """The host's python3 version ("3.11.2"), as the login user; one that is too old is a NoPythonError."""
    res = _boot(t, ["version"], sudo=False, timeout=60)
    if res.rc != 0:
        raise error(t.name, "version", res.rc, res.stderr)
    return res.text.strip()


# ---- errors: kind -> class, in one place --------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    cls: type[SafeapplyError]
    hint: str | None = None


KINDS: dict[str, Kind] = {
    # the snapshot program's: the hint says what the failure means for the host
    "store": Kind(SnapshotError, "the on-target store is not writable (disk full?)"),
    "unsafe": Kind(SnapshotError, "refused an unsafe path; nothing was changed"),
    "corrupt": Kind(SnapshotError, "a blob or manifest does not verify; nothing was changed"),
    "missing": Kind(SnapshotError, "a blob is missing; nothing was changed"),
    "protocol": Kind(SnapshotError, "the byte stream was cut short"),
    "space": Kind(SnapshotError, "the host's disk is full; nothing was changed"),
    "partial": Kind(SnapshotError, "the host was changed in part: restore again once the cause is fixed"),
    "unknown": Kind(UsageError, "list snapshots with `safeapply snapshots`"),
    "snapshot": Kind(SnapshotError),  # the snapshot program crashed
    # the dead-man's switch's
    "deadman": Kind(SafeapplyError, "check systemd on the host (`systemctl status`) and free space under /var/lib"),
    # the bootstrap's
    "python": Kind(NoPythonError, "install python3 3.8 or newer there (Ansible 2.19 needs it too)"),
    "install": Kind(SnapshotError, "free space under /var/lib on the host; nothing was changed"),
    "usage": Kind(SafeapplyError, "a safeapply bug: the controller and its on-host package disagree"),
    # anyone's crash (a traceback on the host's stderr)
    "internal": Kind(SafeapplyError),
}
_AS_SAID = ("unknown", "python", "install", "usage")  # messages that need no program name
_CRASH = {"snapshot": "snapshot", "deadman": "deadman"}  # a program's crash reads as its own failure


def _lines(stderr: bytes) -> list[tuple[str, str]]:
    """(kind, message) of each protocol line on stderr."""
    out = []
    for line in stderr.decode("utf-8", "replace").splitlines():
        if line.startswith(ERROR + " "):
            kind, _, msg = line[len(ERROR) + 1:].partition(" ")
            out.append((kind, msg))
    return out


def _kind_of(stderr: bytes) -> str | None:
    said = _lines(stderr)
    return said[-1][0] if said else None


def error(host: str, entry: str, rc: int, stderr: bytes) -> SafeapplyError:
    """The safeapply error for a failed call. The class and hint come from the kind (KINDS); the wording is
    the one each program used before they moved into one package, so messages and exit codes stay."""
    said = _lines(stderr)
    tail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
    kind, msg = said[-1] if said else ("internal", tail[0])
    program, _, op = entry.rpartition(".")
    if kind == "internal" or kind not in KINDS:
        kind = _CRASH.get(program, "internal")
    k = KINDS[kind]
    if kind in _AS_SAID:
        message = f"{host}: {msg}"
    elif program == "deadman":
        message = f"{host}: dead-man's switch `{op}` failed (exit {rc}): {msg}"
    elif kind == "snapshot":
        message = f"{host}: the snapshot program failed ({op}, exit {rc}): {msg}"
    elif program == "snapshot":
        message = f"{host}: {op}: {msg}"
    else:
        message = f"{host}: `{entry}` failed on the host (exit {rc}): {msg}"
    return k.cls(message, k.hint)
