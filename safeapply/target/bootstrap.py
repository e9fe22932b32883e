"""The door: the only code sent to a host as source (`python3 -c`), the same few lines on every call.

    version                        print the host's Python version, or refuse one older than MIN_PYTHON
    install DIR VERSION SHA256     the package as a zip on stdin -> DIR/VERSION.pyz, atomically
    call DIR VERSION ENTRY ARGS..  run ENTRY of the installed package; `not-installed` when it is missing
                                   (or damaged: then it is removed)

It has to run on whatever `python3` a host has, so that an old one gets a clear one-line refusal instead of a
SyntaxError: no f-strings, annotations only as strings, no walrus, standard library only, nothing imported
from the package it installs (except to run it). Errors follow the package's protocol: one stderr line
`SAFEAPPLY-ERROR <kind> <message>` and exit status 3.
"""

import contextlib
import os
import sys

MIN_PYTHON = (3, 8)
ERROR = "SAFEAPPLY-ERROR"
TMP_PREFIX = ".safeapply-"


def fail(kind: str, message: str) -> int:
    sys.stderr.write("%s %s %s\n" % (ERROR, kind, " ".join(str(message).split("\n"))))
    return 3


def too_old() -> "int | None":
    """The refusal line for a Python older than MIN_PYTHON, else None."""
    if tuple(sys.version_info[:2]) >= MIN_PYTHON:
        return None
    found = "%d.%d.%d" % tuple(sys.version_info[:3])
    need = "%d.%d" % MIN_PYTHON
    return fail("python", "python3 on the target is %s; safeapply needs %s or newer" % (found, need))


def package(directory: str, version: str) -> str:
    return os.path.join(os.path.expanduser(directory), version + ".pyz")


def intact(path: str) -> bool:
    """Ends with a zip's end record (the bundler writes no comment): cheaper than importing zipfile."""
    try:
        with open(path, "rb") as f:
            f.seek(-22, 2)
            return f.read(4) == b"PK\x05\x06"
    except OSError:
        return False


def op_version(args: "list[str]") -> int:
    refused = too_old()
    if refused is not None:
        return refused
    sys.stdout.write("%d.%d.%d\n" % tuple(sys.version_info[:3]))
    return 0


def op_install(args: "list[str]") -> int:
    """Write the zip beside its final name, check it, then one rename: a reader sees all of it or none."""
    refused = too_old()
    if refused is not None:
        return refused
    import hashlib

    directory, version, digest = os.path.expanduser(args[0]), args[1], args[2]
    data = sys.stdin.buffer.read()
    if hashlib.sha256(data).hexdigest() != digest:
        return fail("install", "the package for version %s arrived damaged (%d bytes)" % (version, len(data)))
    tmp = None
    try:
        os.makedirs(directory, 0o755, exist_ok=True)
        tmp = os.path.join(directory, "%s%s.tmp" % (TMP_PREFIX, os.urandom(6).hex()))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, package(directory, version))
        tmp = None
    except OSError as e:
        return fail("install", "cannot install safeapply's on-target programs under %s: %s"
                    % (directory, e.strerror or e))
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    with contextlib.suppress(Exception):  # drop versions nothing refers to any more (the install is done)
        sys.path.insert(0, package(directory, version))
        from safeapply.target.versions import prune
        prune(directory, version)
    return 0


def op_call(args: "list[str]") -> int:
    refused = too_old()
    if refused is not None:
        return refused
    path = package(args[0], args[1])
    if not os.path.isfile(path):
        return fail("not-installed", path)
    if not intact(path):  # damaged since it was checked on arrival: the controller sends it again
        os.unlink(path)
        return fail("not-installed", path + " (damaged, removed)")
    sys.path.insert(0, path)
    from safeapply.target.entries import main
    return main(args[2:])


OPS = {"version": op_version, "install": op_install, "call": op_call}


def main(argv: "list[str]") -> int:
    if not argv or argv[0] not in OPS:
        return fail("usage", "usage: bootstrap version | install DIR VERSION SHA256 | call DIR VERSION ENTRY ...")
    return OPS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
