"""Lint results cached by content: the playbooks, everything beside them, the tool versions and options.

Stdlib only and no Ansible import: a cache hit must answer in well under 0.2 s. (With vault options, the key
also holds an HMAC of the secrets, so those are loaded first: Ansible is imported then.)
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from safeapply.config import private_dir, state_dir

_SKIP_DIRS = {".ansible", ".git", ".venv", "venv", "node_modules", ".cache", ".tox", "__pycache__", ".mypy_cache"}
_MAX_FILES = 5000
_MAX_SIZE = 512_000
_CONTENT_SUFFIXES = {"", ".yml", ".yaml", ".j2", ".json", ".cfg", ".ini", ".conf", ".sh", ".py", ".txt", ".toml"}
_OVERRIDDEN = {"ANSIBLE_INVENTORY_UNPARSED_FAILED", "ANSIBLE_HOST_PATTERN_MISMATCH", "ANSIBLE_DEVEL_WARNING",
               "ANSIBLE_DEPRECATION_WARNINGS", "ANSIBLE_LOCALHOST_WARNING"}
TOOLS = ("ansible-core", "ansible-lint", "ansible-compat", "safeapply")


def tool_versions() -> dict[str, str]:
    out = {}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "none"
    return out


def _own_code_fingerprint() -> list[str]:
    """safeapply's lint code itself (its version stays the same during development): sizes and mtimes."""
    here = Path(__file__).parent
    return sorted(f"{p.relative_to(here)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in here.rglob("*.py"))


def _collections_fingerprint() -> list[str]:
    """Which collections are installed (names and their MANIFEST mtimes), without importing Ansible."""
    env = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS") or ""
    roots = [Path(p) for p in env.split(os.pathsep) if p]
    roots += [Path.home() / ".ansible/collections", Path("/usr/share/ansible/collections")]
    roots += [Path(p) for p in sys.path if p.endswith("site-packages")]
    found = []
    for root in roots:
        for coll in sorted((root / "ansible_collections").glob("*/*")):
            manifest = coll / "MANIFEST.json"
            stamp = manifest.stat().st_mtime_ns if manifest.exists() else 0
            found.append(f"{coll}:{stamp}")
    return found


def _walk(root: Path) -> Iterator[Path | None]:
    """The project's files in a stable order, without tool and VCS folders; None once there are too many."""
    count = 0
    own_state = state_dir().resolve()  # our cache may live inside the project: never hash it
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS
                             and (Path(dirpath) / d).resolve() != own_state)
        for name in sorted(filenames):
            count += 1
            if count > _MAX_FILES:
                yield None
                return
            yield Path(dirpath) / name


def special_files(root: Path) -> list[Path]:
    """FIFOs, sockets and devices with a name Ansible may load (vars, tasks, templates): reading one blocks."""
    out = []
    for path in _walk(root):
        if path is not None and path.suffix in _CONTENT_SUFFIXES - {""}:
            with contextlib.suppress(OSError):
                if not stat.S_ISREG(path.stat().st_mode) and not stat.S_ISDIR(path.stat().st_mode):
                    out.append(path)
    return out


def _tree(root: Path, h: Any) -> None:
    for path in _walk(root):
        if path is None:
            h.update(b"truncated")
            return
        try:
            st = path.stat()
            if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block the read forever
                h.update(f"{path}:{stat.S_IFMT(st.st_mode)}".encode())
                continue
            if st.st_size > _MAX_SIZE or path.suffix not in _CONTENT_SUFFIXES:
                h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
                continue
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
        except OSError:
            h.update(f"{path}:unreadable".encode())


def key(paths: list[Path], root: Path, options: dict[str, Any]) -> str:
    h = hashlib.sha256()
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("ANSIBLE_", "SAFEAPPLY_LINT")) and k not in _OVERRIDDEN}
    h.update(json.dumps([str(p) for p in paths], sort_keys=True).encode())
    fingerprint = [options, tool_versions(), env, _collections_fingerprint(), _own_code_fingerprint()]
    h.update(json.dumps(fingerprint, sort_keys=True, default=str).encode())
    for p in paths:
        if p.is_file() and not p.resolve().is_relative_to(root.resolve()):
            h.update(p.read_bytes())
    _tree(root, h)
    return h.hexdigest()


def secrets_digest(secrets: Iterable[tuple[str, bytes]]) -> str:
    """HMAC-SHA256 of the vault secrets (id and password), keyed by this controller's own random key: a changed
    password changes the cache key, and nothing stored helps guess one (a plain hash of a password can be
    brute-forced offline; this one cannot without the key). "" without secrets."""
    items = list(secrets)
    if not items:
        return ""
    mac = hmac.new(_hmac_key(), digestmod=hashlib.sha256)
    for vid, secret in items:
        for part in (vid.encode(), secret):
            mac.update(len(part).to_bytes(8, "big") + part)
    return mac.hexdigest()


def _hmac_key() -> bytes:
    """32 random bytes kept in the state dir (0600), created once; where it cannot be kept, a new one each time
    (vaulted lints then never hit the cache)."""
    try:
        path = private_dir(state_dir()) / "lint-cache.key"
        with contextlib.suppress(FileNotFoundError):
            return _read_key(path)
        tmp = path.with_name(f".lint-cache.key.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
        try:
            os.link(tmp, path)  # atomic, and never over a key another process made meanwhile
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return _read_key(path)
    except OSError:
        return os.urandom(32)


def _read_key(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) != 32:
        raise OSError(f"{path}: not a 32-byte key")
    return data


def cache_dir() -> Path:
    return private_dir(state_dir() / "cache" / "lint")


def digests(paths: Iterable[Path]) -> dict[str, str]:
    """SHA-256 of each file ("missing" when it cannot be read): what a stored result also depends on."""
    out = {}
    for p in paths:
        try:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
        except OSError:
            out[str(p)] = "missing"
    return out


def load(k: str) -> dict[str, Any] | None:
    """A stored result, unless a file it depends on outside the project tree (a role found through
    `roles_path`, ansible.cfg) changed since: the key hashes the tree, these are checked on each hit."""
    try:
        data = json.loads((cache_dir() / f"{k}.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    deps = data.get("deps") or {}
    if deps and digests(Path(p) for p in deps) != deps:
        return None
    return data


def store(k: str, report: dict[str, Any], deps: Iterable[Path] = ()) -> None:
    """Keep a result (with the digests of the files outside the tree it read); a cache that cannot be written
    (state dir unusable, disk full) only costs time."""
    try:
        d = cache_dir()
    except OSError:
        return
    tmp = d / f".{k}.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps({**report, "deps": digests(deps)}))
        tmp.chmod(0o600)
        os.replace(tmp, d / f"{k}.json")
    except OSError:
        tmp.unlink(missing_ok=True)
