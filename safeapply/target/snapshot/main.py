"""The snapshot program's entries: `snapshot.scan`, `snapshot.send`, `snapshot.read`, `snapshot.restore`.
Each snapshot kept on a host also (re)writes BASE/bin/safeapply-restore.py, a launcher of this installed
package, so a host can restore itself: `safeapply-restore.py SNAPSHOT_ID`. Errors: kinds store, unsafe,
corrupt, missing, protocol, space, partial, unknown (exit 3).

A restore keeps a journal, BASE/restores/journal.json, from its first change until it is done (a failure
that changed nothing removes it too). Every op with a base holds the store lock, so a journal found by the
next op is an interrupted restore (the controller's connection died, the host lost power): the next restore
to the same snapshot completes it (a restore to another one replaces it, and says so), and a snapshot — the
first thing a run does — is refused until then, naming the command that finishes it."""

import contextlib
import datetime
import hashlib
import json
import os
import sys
import zlib
from typing import Callable, Dict, FrozenSet, List, Optional, Tuple

from .. import layout
from ..errors import TargetError
from .apply import Restorer
from .common import (
    FORMAT,
    Entry,
    abort,
    commit,
    dec,
    enc,
    id_matches,
    manifest_path,
    pack,
    private_dirs,
    snapshot_id,
    unpack,
    write_new,
)
from .packs import Packs, PackWriter, prune, store_lock
from .safety import check_manifest, verify_blobs
from .scan import Hasher, parse_roots, scan

LAUNCHER = """#!{python}
# Restore this host to a snapshot kept on it, without the controller: safeapply-restore.py SNAPSHOT_ID
import sys
sys.path.insert(0, {package!r})
from safeapply.target.snapshot.main import installed
sys.exit(installed(sys.argv[1:]))
"""


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def opt(args: List[str], name: str, default: str = "") -> str:
    return args[args.index(name) + 1] if name in args else default


def opts(args: List[str], name: str) -> List[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == name]


def dumps(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def op_scan(args: List[str]) -> int:
    """Walk the roots. With --stream: read known blob hashes (32 bytes each) from stdin and answer with one
    stream: every other blob as it is read, then the manifest; else just the zlib'd manifest."""
    roots = parse_roots(opts(args, "--root"))
    base = enc(opt(args, "--base")) or None
    out = sys.stdout.buffer
    stream = "--stream" in args
    known = sys.stdin.buffer.read() if stream else b""
    writer = PackWriter(base) if base else None
    hasher = Hasher(writer, Packs(base) if base else None, out if stream else None,
                    {known[i: i + 32].hex() for i in range(0, len(known), 32)})
    header = {"format": FORMAT, "host": opt(args, "--host"), "created": utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
              "roots": [dec(r) for r in roots]}
    skip = layout.snapshots(base) if base else None
    if base is not None:
        refuse_if_interrupted(base, opt(args, "--host"))
    try:
        body = [dumps(e) for e in scan(roots, hasher, skip, inodes="--inodes" in args)]
        manifest = dumps(header) + b"".join(body)
        if base is not None and writer is not None:
            keep_on_target(base, manifest, writer)
    finally:
        if writer is not None:
            writer.abort()  # a no-op once committed
    packed = zlib.compress(manifest, 6)  # JSON lines shrink ~10x: incrementals stay small
    out.write(pack(b"M", "", packed) + b"E" if stream else packed)
    return 0


def keep_on_target(base: bytes, manifest: bytes, writer: PackWriter) -> None:
    """The host's own copy: the new blobs' pack, the manifest and the restore program, each durable."""
    sid = snapshot_id(manifest)
    pending: List[Tuple[bytes, bytes]] = []
    try:
        pending += writer.files()
        final = manifest_path(base, sid)
        private_dirs(os.path.dirname(final))
        pending.append((write_new(final, manifest), final))
        prog = os.path.join(base, os.fsencode(layout.RESTORE_PROGRAM))
        private_dirs(os.path.dirname(prog))
        launcher = LAUNCHER.format(python=sys.executable or "/usr/bin/env python3",  # ansible_python_interpreter
                                    package=layout.installed_at()).encode()
        pending.append((write_new(prog, launcher, 0o700), prog))
        commit(pending)
    except OSError as e:
        abort(pending)
        raise TargetError("store", f"cannot write the on-target copy under {dec(base)}: {e.strerror}") from e
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):  # best effort: the new copy is safe
        prune(base, pinned=armed_snapshots(base))


def armed_snapshots(base: bytes) -> FrozenSet[str]:
    """Snapshots an armed dead-man's switch restores from when it fires: never pruned."""
    d = layout.deadman_dir(base)
    out = set()
    for run in os.listdir(d) if os.path.isdir(d) else []:
        state = os.path.join(d, run)
        if not os.path.exists(os.path.join(state, b"fired.json")):
            with contextlib.suppress(OSError, ValueError), open(os.path.join(state, b"config.json"), "rb") as f:
                out.add(str(json.loads(f.read()).get("snapshot_id")))
    return frozenset(out)


def op_send(args: List[str]) -> int:
    packs = Packs(enc(opt(args, "--base")))
    out = sys.stdout.buffer
    for line in sys.stdin.buffer.read().split():
        h = line.decode()
        data = packs.get(h)
        out.write(pack(b"M", h, b"") if data is None else pack(b"B", h, data))
    out.write(b"E")
    return 0


def op_read(args: List[str]) -> int:
    out = sys.stdout.buffer
    for line in sys.stdin.buffer.read().splitlines():
        p = json.loads(line)
        try:
            fd = os.open(enc(p), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as f:
                out.write(pack(b"F", p, f.read()))
        except OSError:
            out.write(pack(b"M", p, b""))
    out.write(b"E")
    return 0


def _load(base: bytes, sid: str) -> Optional[bytes]:
    try:
        with open(manifest_path(base, sid), "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data if id_matches(sid, data) else None


def receive(base: bytes, sid: str) -> None:
    """Blobs and the manifest sent by the controller: verified, then kept in the on-target store."""
    writer = PackWriter(base)
    pending: List[Tuple[bytes, bytes]] = []
    try:
        while True:
            tag, name, data = unpack(sys.stdin.buffer)
            if tag == b"E":
                break
            if tag == b"B":
                if hashlib.sha256(data).hexdigest() != name:
                    raise TargetError("corrupt", f"blob {name} arrived corrupt")
                writer.add(name, data)
            elif tag == b"M" and id_matches(sid, data):
                final = manifest_path(base, sid)
                private_dirs(os.path.dirname(final))
                pending.append((write_new(final, data), final))
        pending += writer.files()
        commit(pending)
    except OSError as e:
        abort(pending)
        raise TargetError("store", f"cannot write under {dec(base)}: {e.strerror}") from e
    except BaseException:
        abort(pending)
        raise
    finally:
        writer.abort()


def op_restore(args: List[str]) -> int:
    base = enc(opt(args, "--base"))
    sid = opt(args, "--id")
    if "--stdin" in args:
        receive(base, sid)
    data = _load(base, sid)
    if data is None:
        raise TargetError("unknown", f"snapshot {sid} is not on this host (or its manifest is corrupt)")
    lines = data.splitlines()
    header = json.loads(lines[0])
    want: List[Entry] = [json.loads(x) for x in lines[1:]]
    roots = parse_roots(header["roots"])
    check_manifest(roots, want)
    packs = Packs(base)
    need = verify_blobs(packs, want)
    if need and "--stdin" in args:  # nothing changed yet: the controller sends these and calls again
        sys.stdout.buffer.write(dumps({"need": need}))
        return 0
    if need:
        raise TargetError("corrupt", f"{len(need)} blobs of {sid} are missing or corrupt, e.g. {need[0]}")
    cur = {e["p"]: e for e in scan(roots, Hasher(None), layout.snapshots(base), inodes=True)}
    interrupted = read_journal(base)
    write_journal(base, {"snapshot": sid, "started": utcnow().isoformat(), "pid": os.getpid()})
    try:
        changes = Restorer(packs, roots, want, cur).run()
    except TargetError as e:
        if e.kind == "space":  # nothing was changed: the host is as it was before this restore
            restore_journal(base, interrupted)
        raise
    report: Dict[str, object] = {"snapshot": sid, "host": header["host"], "roots": header["roots"],
                                 "changes": changes, "finished": utcnow().isoformat()}
    if interrupted is not None:
        report["interrupted"] = interrupted  # completed (same snapshot) or replaced by this restore
    record(base, sid, report)
    restore_journal(base, None)
    sys.stdout.buffer.write(dumps(report))
    return 0


def journal_path(base: bytes) -> bytes:
    return os.path.join(base, os.fsencode(layout.RESTORE_JOURNAL))


def read_journal(base: bytes) -> Optional[Dict[str, object]]:
    """The journal of an interrupted restore (None: none). Only read under the store lock."""
    try:
        with open(journal_path(base), "rb") as f:
            doc = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def write_journal(base: bytes, doc: Dict[str, object]) -> None:
    path = journal_path(base)
    private_dirs(os.path.dirname(path))
    commit([(write_new(path, dumps(doc)), path)])


def restore_journal(base: bytes, doc: Optional[Dict[str, object]]) -> None:
    """Put the journal back as `doc` (None: no restore is half done)."""
    if doc is not None:
        write_journal(base, doc)
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(journal_path(base))


def refuse_if_interrupted(base: bytes, host: str) -> None:
    """A run must not start (nor a new snapshot be taken) on a host a restore left half done."""
    j = read_journal(base)
    if j is not None:
        raise TargetError("partial", f"a restore to snapshot {j.get('snapshot')} was interrupted on this host "
                          f"(started {j.get('started')}); it may be half-restored: finish it with `safeapply "
                          f"restore {host or 'HOST'} {j.get('snapshot')}` (or the dead-man's switch does)")


def record(base: bytes, sid: str, report: Dict[str, object]) -> None:
    d = layout.restores(base)
    stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
    try:
        private_dirs(d)
        with open(os.path.join(d, enc(f"{stamp}-{sid}.json")), "wb") as f:
            f.write(dumps(report))
    except OSError as e:
        sys.stderr.write(f"safeapply-restore: could not keep the record: {e.strerror}\n")


def _run(op: Callable[[List[str]], int], args: List[str]) -> int:
    """Private files only; with a base, one op at a time under its store lock."""
    os.umask(0o077)
    base = opt(args, "--base")
    if not base:
        return op(args)
    with store_lock(enc(base)):
        return op(args)


def scan_entry(args: List[str]) -> int:
    return _run(op_scan, args)


def send(args: List[str]) -> int:
    return _run(op_send, args)


def read(args: List[str]) -> int:
    return _run(op_read, args)


def restore(args: List[str]) -> int:
    return _run(op_restore, args)


def installed(argv: List[str]) -> int:
    """BASE/bin/safeapply-restore.py SNAPSHOT_ID: restore from the copy kept under BASE."""
    if len(argv) != 1 or argv[0].startswith("-"):
        sys.stderr.write("usage: safeapply-restore.py SNAPSHOT_ID\n")
        return 2
    from ..entries import main

    base = os.path.dirname(os.path.dirname(os.path.abspath(sys.argv[0])))
    return main(["snapshot.restore", "--base", base, "--id", argv[0]])
