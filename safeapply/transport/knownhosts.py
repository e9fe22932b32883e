"""Host keys checked as OpenSSH checks them: every UserKnownHostsFile and GlobalKnownHostsFile, plain and hashed
(`|1|salt|hmac`) names, `*`/`?`/`!` patterns, `@revoked` (a revoked key is refused even where it is also listed)
and `@cert-authority` (read, never a crash; paramiko cannot verify host certificates, so a host known only
through a CA is "unknown" and the message says why). Accepted new keys are appended hashed, as
`HashKnownHosts yes` writes them, to the first user file (file 0600, directory 0700)."""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import paramiko

_WRITE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Entry:
    marker: str | None  # "@revoked", "@cert-authority" or None
    names: str  # the host field: comma-separated patterns, or one hashed name
    key_type: str
    blob: bytes
    where: str  # path:line


def read(paths: Iterable[str]) -> list[Entry]:
    """Every usable line of these known_hosts files (missing files and unparsable lines are skipped, as ssh does)."""
    out = []
    for path in paths:
        try:
            text = Path(path).expanduser().read_text(errors="replace")
        except OSError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            entry = _parse(line.strip(), f"{path}:{n}")
            if entry is not None:
                out.append(entry)
    return out


def _parse(line: str, where: str) -> Entry | None:
    if not line or line.startswith("#"):
        return None
    marker = None
    if line.startswith("@"):
        marker, _, line = line.partition(" ")
        if marker not in ("@revoked", "@cert-authority"):
            return None
    fields = line.split()
    if len(fields) < 3:
        return None
    try:
        blob = base64.b64decode(fields[2], validate=True)
    except (binascii.Error, ValueError):
        return None
    return Entry(marker, fields[0], fields[1], blob, where)


def host_matches(names: str, host: str) -> bool:
    """OpenSSH's match_hostname: a hashed name, or patterns where a negated match wins over any other."""
    host = host.lower()
    if names.startswith("|1|"):
        try:
            return paramiko.HostKeys.hash_host(host, names) == names
        except (binascii.Error, ValueError, AssertionError, IndexError):
            return False
    hit = False
    for pattern in names.lower().split(","):
        negated = pattern.startswith("!")
        if _pattern(pattern.lstrip("!")).fullmatch(host):
            if negated:
                return False
            hit = True
    return hit


@cache
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))


@dataclass(frozen=True)
class Verdict:
    status: str  # "known", "revoked", "changed", "unknown"
    where: str = ""  # the line that decided it
    ca_listed: bool = False  # a @cert-authority line names this host (paramiko cannot use it)


def check(entries: Sequence[Entry], host: str, key: paramiko.PKey) -> Verdict:
    blob = key.asbytes()
    mine = [e for e in entries if host_matches(e.names, host)]
    for e in mine:
        if e.marker == "@revoked" and e.blob == blob:
            return Verdict("revoked", e.where)
    plain = [e for e in mine if e.marker is None]
    for e in plain:
        if e.blob == blob:
            return Verdict("known", e.where)
    if plain:  # keys of this host are known, but not this one: changed (also when the key type differs)
        return Verdict("changed", plain[0].where)
    return Verdict("unknown", ca_listed=any(e.marker == "@cert-authority" for e in mine))


def preferred_key_types(entries: Sequence[Entry], host: str) -> list[str]:
    """Host key algorithms to ask for first: those of the keys known for this host (as OpenSSH orders them)."""
    out: list[str] = []
    for e in entries:
        if e.marker is None and host_matches(e.names, host):
            algs = ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if e.key_type == "ssh-rsa" else [e.key_type]
            out += [a for a in algs if a not in out]
    return out


def append_hashed(path: str, host: str, key: paramiko.PKey) -> None:
    """Record an accepted key, hashed, in `path` (created 0600, its directory 0700)."""
    p = Path(path).expanduser()
    line = f"{paramiko.HostKeys.hash_host(host.lower())} {key.get_name()} {key.get_base64()}\n"
    with _WRITE_LOCK:
        if not p.parent.exists():
            p.parent.mkdir(parents=True, mode=0o700)
        fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(line)
