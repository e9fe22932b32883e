"""Property test on a real sandbox host: random mutations of /etc, restore, and an independent listing
(find -printf, sha256sum, getfattr, getfacl over plain OpenSSH) must equal the one taken before.

Seeds are a fixed list (deterministic); several seeds' mutation sets are applied per restore cycle."""

from __future__ import annotations

import random
import re

import pytest

from safeapply.snapshot import Store, restore, take

pytestmark = pytest.mark.sandbox

SEEDS = list(range(1000, 1240))  # 240 mutation sets
PER_CYCLE = 6
# Paths whose mutation would cut our own line to the host (sshd, PAM, NSS, sudo, the loader, python3).
CRITICAL = re.compile(r"^/etc(/(passwd|group|shadow|gshadow|nsswitch\.conf|pam\.conf|pam\.d|ssh|sudoers|sudoers\.d"
                      r"|security|ld\.so\.\w+|ld\.so\.conf\.d|python3[.\d]*|ssl|alternatives|environment|"
                      r"login\.defs|shells|hostname|hosts|resolv\.conf|systemd|dbus-1|machine-id)(/.*)?)?$", re.S)
ODD = ["plain", "with space", "new\nline", "bad\xffbyte", "-dash", "ümlaut", "tab\tname", "*star", "a'quote"]


def q(s: str) -> str:
    """bash $'...' quoting that carries any byte (non-UTF-8 names come as surrogate escapes)."""
    return "$'" + "".join(f"\\x{b:02x}" for b in s.encode("utf-8", "surrogateescape")) + "'"


def odd_name(r: random.Random) -> str:
    name = r.choice(ODD) + str(r.randrange(1000))
    return name.replace("\xff", "\udcff")


def mutation_set(seed: int, files: list[str], dirs: list[str]) -> list[str]:
    """A random list of shell commands (3-8) that mutate /etc; each tolerates an earlier one's effect."""
    r = random.Random(seed)
    made: list[str] = []
    cmds = []
    for _ in range(r.randint(3, 8)):
        op = r.choice(OPS)
        cmds.append(op(r, files + made, dirs, made))
    return cmds


def op_create(r: random.Random, files: list[str], dirs: list[str], made: list[str]) -> str:
    p = f"{r.choice(dirs)}/{odd_name(r)}"
    made.append(p)
    data = bytes(r.randrange(256) for _ in range(r.randrange(0, 200)))
    hexdata = "".join(f"\\x{b:02x}" for b in data)
    if r.random() < 0.25:
        made.append(f"{p}/inner")
        return f"mkdir {q(p)} && printf '%b' '{hexdata}' > {q(p + '/inner')}"
    return f"printf '%b' '{hexdata}' > {q(p)}"


def op_delete(r: random.Random, files: list[str], dirs: list[str], made: list[str]) -> str:
    return f"rm -rf {q(r.choice(files + dirs[1:]))}"


def op_modify(r: random.Random, files: list[str], dirs: list[str], made: list[str]) -> str:
    p = q(r.choice(files))
    return r.choice([f"echo mutated{r.randrange(99)} >> {p}", f"truncate -s 0 {p}", f"printf 'x' > {p}",
                     f"sed -i '1d' {p}"])


def op_chmod(r: random.Random, files: list[str], dirs: list[str], made: list[str]) -> str:
    mode = r.choice(["4755", "2750", "1777", "0600", "0000", "0644", "6711", "0755"])
    return f"chmod {mode} {q(r.choice(files + dirs[1:]))}"


def op_chown(r: random.Random, files: list[str], dirs: list[str], made: list[str]) -> str:
    who = r.choice(["1000:1000", "65534:65534", "12345:54321", "0:1000", "nobody:root"])
    return f"chown -h {who} {q(r.choice(files + dirs[1:]))}"


def op_symlink(r: random.Random, files: list[str], dirs: list[str], made: list[str]) -> str:
    p = r.choice(files)
    target = r.choice(["/etc/passwd", "../../tmp", "dangling", r.choice(files)])
    if r.random() < 0.5:
        made.append(f"{r.choice(dirs)}/{odd_name(r)}")
        p = made[-1]
    return f"rm -rf {q(p)}; ln -s {q(target)} {q(p)}"


def op_hardlink(r: random.Random, files: list[str], dirs: list[str], made: list[str]) -> str:
    a, b = r.choice(files), r.choice(files)
    if r.random() < 0.5:
        made.append(f"{r.choice(dirs)}/{odd_name(r)}")
        b = made[-1]
    return f"[ -f {q(a)} ] && [ ! -L {q(a)} ] && ln -f {q(a)} {q(b)}"


def op_xattr(r: random.Random, files: list[str], dirs: list[str], made: list[str]) -> str:
    p = q(r.choice(files + dirs[1:]))
    return r.choice([
        f"setfattr -n user.k{r.randrange(5)} -v v{r.randrange(99)} {p}",
        f"setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 {p}",
        f"setfattr -x user.k0 {p}",
        f"touch -h -d @{r.randrange(10**9)}.{r.randrange(10**9):09d} {p}",
    ])


def op_acl(r: random.Random, files: list[str], dirs: list[str], made: list[str]) -> str:
    if r.random() < 0.4:
        return f"setfacl -d -m g:nogroup:rx,u:1000:rwx {q(r.choice(dirs[1:]))}"
    p = q(r.choice(files + dirs[1:]))
    return r.choice([f"setfacl -m u:nobody:rw {p}", f"setfacl -m g:1000:r,m::rwx {p}", f"setfacl -b {p}"])


def op_rename_dir(r: random.Random, files: list[str], dirs: list[str], made: list[str]) -> str:
    d = r.choice(dirs[1:])
    dest = f"{r.choice(dirs)}/{odd_name(r)}"
    made.append(dest)
    return f"mv -T {q(d)} {q(dest)}"


def op_special(r: random.Random, files: list[str], dirs: list[str], made: list[str]) -> str:
    p = f"{r.choice(dirs)}/{odd_name(r)}"
    made.append(p)
    if r.random() < 0.5:
        return f"mkfifo -m 0640 {q(p)}"
    return f"python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' {q(p)}"


def op_retype(r: random.Random, files: list[str], dirs: list[str], made: list[str]) -> str:
    if r.random() < 0.5:
        p = q(r.choice(files))
        return f"rm -f {p} && mkdir {p} && echo x > {p}/child"
    p = q(r.choice(dirs[1:]))
    return f"rm -rf {p} && echo was-a-dir > {p}"


OPS = [op_create, op_delete, op_modify, op_chmod, op_chown, op_symlink, op_hardlink, op_xattr, op_acl,
       op_rename_dir, op_special, op_retype]

TRUTH = r"""
set -e
cd /
echo '== find'
find /etc -printf '%y %m %U %G %T@ %s %n %p\0%l\0'
echo '== sha'
find /etc -type f -print0 | sort -z | xargs -0 sha256sum -z
echo '== xattr'
getfattr -R -P -h -d -m - -e hex --absolute-names /etc 2>/dev/null
echo '== acl'
getfacl -R -P -p -n /etc 2>/dev/null
echo '== links'
find /etc -type f -links +1 -printf '%i %p\0'
"""


def truth(host) -> dict[str, object]:
    """The host's /etc as told by standard tools (not our code): type, mode, owner, mtime, size, link
    count, symlink target, content hash, xattrs incl. capabilities, ACLs, and the hard-link grouping."""
    import subprocess

    raw = subprocess.run(["ssh", "-F", str(host.paths.ssh_config), "-l", "root", host.name, "bash -s"],
                         input=TRUTH.encode(), capture_output=True, check=True, timeout=120).stdout
    parts = dict(re.findall(rb"== (\w+)\n(.*?)(?=\n?== \w+\n|\Z)", raw, re.S))
    f = parts[b"find"].split(b"\0")
    meta = {}
    for i in range(0, len(f) - 1, 2):
        fields = f[i].split(b" ", 7)
        if fields[0] == b"d":  # a directory's size and link count follow from its entries (overlayfs: 1)
            fields[5:7] = [b"-", b"-"]
        meta[fields[7]] = (fields[:7], f[i + 1])
    sha = dict(reversed(x.split(b"  ", 1)) for x in parts[b"sha"].split(b"\0") if x)
    groups: dict[bytes, set[bytes]] = {}
    for x in parts[b"links"].split(b"\0"):
        if x:
            ino, p = x.split(b" ", 1)
            groups.setdefault(ino, set()).add(p)
    return {"meta": meta, "sha": sha, "xattr": _blocks(parts[b"xattr"]), "acl": _blocks(parts[b"acl"]),
            "links": sorted(sorted(g) for g in groups.values())}


def _blocks(text: bytes) -> dict[bytes, bytes]:
    out = {}
    for block in text.strip().split(b"\n\n"):
        if block.strip():
            head, _, rest = block.strip().partition(b"\n")
            out[head] = rest
    return out


def diff_truth(a: dict[str, object], b: dict[str, object]) -> list[str]:
    out = []
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, dict) and isinstance(y, dict):
            out += [f"{key}: {k!r}: {x.get(k)!r} != {y.get(k)!r}" for k in x.keys() | y.keys() if x.get(k) != y.get(k)]
        elif x != y:
            out.append(f"{key}: {x!r} != {y!r}")
    return out


def targets(t0: dict[str, object]) -> tuple[list[str], list[str]]:
    meta = t0["meta"]
    assert isinstance(meta, dict)
    files, dirs = [], ["/etc"]
    for p, (fields, _l) in sorted(meta.items()):
        s = p.decode("utf-8", "surrogateescape")
        if CRITICAL.match(s):
            continue
        (dirs if fields[0] == b"d" else files).append(s)
    return files, dirs


def test_random_mutations_restore_exactly(sandbox_factory, tmp_path) -> None:
    host = sandbox_factory("snapprop")
    store = Store(tmp_path / "store")
    with host.transport() as t:
        sid = take(t, ["/etc"], store).id
    t0 = truth(host)
    files, dirs = targets(t0)
    assert len(files) > 50 and len(dirs) > 10
    for start in range(0, len(SEEDS), PER_CYCLE):
        seeds = SEEDS[start: start + PER_CYCLE]
        script = "\n".join(c + " 2>/dev/null || true" for s in seeds for c in mutation_set(s, files, dirs))
        host.sh("bash -s", stdin=script.encode("utf-8", "surrogateescape"))
        assert diff_truth(t0, truth(host)), f"seeds {seeds} changed nothing"
        with host.transport() as t:
            report = restore(t, sid, store)
            assert report.changed
            problems = diff_truth(t0, truth(host))
            assert not problems, f"seeds {seeds}: " + "\n".join(problems[:8])
            if start % (PER_CYCLE * 8) == 0:
                assert restore(t, sid, store).changes == ()
