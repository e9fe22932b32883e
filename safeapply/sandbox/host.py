"""Boot and tear down one sandbox host: overlay over the cached rootfs, own netns (loopback only),
systemd-nspawn with systemd as PID 1. Reached only through `ip netns exec NS nc 127.0.0.1 22` (ProxyCommand).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from safeapply.errors import SafeapplyError, UsageError
from safeapply.sandbox.containers import containers_env, ensure_containers_rootfs
from safeapply.sandbox.paths import SandboxPaths, cgroup_dirs, controller_key
from safeapply.sandbox.proc import alive, read_pid
from safeapply.sandbox.rootfs import ensure_rootfs
from safeapply.sandbox.teardown import clear_propagation, down

BOOT_TIMEOUT = 90.0


class SandboxError(SafeapplyError):
    pass


@dataclass(frozen=True)
class SandboxInfo:
    name: str
    running: bool
    leader_pid: int | None
    netns: str
    inventory: str
    ssh_config: str

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def require_host_support() -> None:
    if platform.system() != "Linux":
        raise SandboxError("sandbox hosts need Linux (systemd-nspawn, network namespaces)")
    if os.geteuid() != 0:
        raise SandboxError("sandbox hosts need root (mounts, namespaces, cgroups)", "run with sudo")
    for tool in ("systemd-nspawn", "debootstrap", "ip", "nc", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise SandboxError(
                f"`{tool}` not found",
                "apt-get install --no-install-recommends systemd-container debootstrap iproute2 "
                "netcat-openbsd openssh-client",
            )


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise SandboxError(f"`{' '.join(argv)}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def leader_pid(p: SandboxPaths) -> int | None:
    pid = read_pid(p.dir / "nspawn.pid")
    if pid is None or not alive(pid):
        return None
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        first = children.read_text().split()
    except OSError:
        return None
    return int(first[0]) if first else None


def ensure_controller_key() -> Path:
    key = controller_key()
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "safeapply-sandbox", "-f", str(key))
    return key


def _passwd_ids(root: Path, user: str) -> tuple[int, int, Path]:
    for line in (root / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == user:
            return int(f[2]), int(f[3]), root / f[5].lstrip("/")
    raise SandboxError(f"user {user} missing from the sandbox rootfs")


def _seed_files(p: SandboxPaths) -> None:
    """Per-host files written into the overlay before boot: hostname, host key, authorized keys."""
    m = p.merged
    (m / "etc/hostname").write_text(p.name + "\n")
    (m / "etc/hosts").write_text(f"127.0.0.1\tlocalhost {p.name}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    hostkey = m / "etc/ssh/ssh_host_ed25519_key"
    _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{p.name}", "-f", str(hostkey))
    pub = Path(str(hostkey) + ".pub").read_text().split()
    p.known_hosts.write_text(f"{p.machine} {pub[0]} {pub[1]}\n")
    authorized = Path(str(controller_key()) + ".pub").read_bytes()
    for user in ("root", "deploy", "nosudo"):
        uid, gid, home = _passwd_ids(m, user)
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_bytes(authorized)
        (ssh_dir / "authorized_keys").chmod(0o600)
        for path in (ssh_dir, ssh_dir / "authorized_keys"):
            os.chown(path, uid, gid)


def _write_client_files(p: SandboxPaths) -> None:
    key = controller_key()
    p.ssh_config.write_text(
        f"Host {p.name}\n  HostName {p.machine}\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
        f"  BatchMode yes\n  UserKnownHostsFile {p.known_hosts}\n  StrictHostKeyChecking yes\n"
        f"  ProxyCommand {p.proxy_command}\n  LogLevel ERROR\n  ConnectTimeout 5\n"
    )
    p.inventory.write_text(yaml.safe_dump({"all": {"hosts": {p.name: inventory_vars(p)}}}, sort_keys=False))


def inventory_vars(p: SandboxPaths, user: str = "root") -> dict[str, str]:
    return {
        # the prefixed name: unique across prefixes, so Ansible's ControlPath (host, port, user) is too
        "ansible_host": p.machine,
        "ansible_user": user,
        "ansible_ssh_private_key_file": str(controller_key()),
        "ansible_ssh_common_args": f'-o ProxyCommand="{p.proxy_command}" '
        f"-o UserKnownHostsFile={p.known_hosts} -o StrictHostKeyChecking=yes",
        "ansible_python_interpreter": "/usr/bin/python3",
    }


def up(name: str, containers: bool = False) -> SandboxInfo:
    """Boot one sandbox and wait until SSH logins work. On any failure everything made so far is removed.
    `containers`: boot the rootfs with podman and local images instead (sandbox/containers.py)."""
    require_host_support()
    p = SandboxPaths(name)
    if p.dir.exists():
        raise UsageError(f"sandbox {name} already exists", f"`safeapply sandbox down {name}` first")
    rootfs = ensure_containers_rootfs() if containers else ensure_rootfs()
    ensure_controller_key()
    clear_propagation(p.machine)  # what a killed earlier sandbox of the same name left behind
    try:
        for sub in ("upper", "work", "merged"):
            (p.dir / sub).mkdir(parents=True)
        _sh("mount", "-t", "overlay", p.machine, "-o",
            f"lowerdir={rootfs},upperdir={p.dir / 'upper'},workdir={p.dir / 'work'}", str(p.merged))
        _seed_files(p)
        _sh("ip", "netns", "add", p.netns)
        _sh("ip", "-n", p.netns, "link", "set", "lo", "up")
        _start_supervisor(p, containers_env() if containers else {})
        _wait_for_ssh(p)
        _write_client_files(p)
    except BaseException:
        down(name, fast=True)
        raise
    return info(p)


def _start_supervisor(p: SandboxPaths, env: dict[str, str]) -> None:
    script = str(resources.files("safeapply.sandbox") / "supervise.sh")
    cgs = " ".join(str(d) for d in cgroup_dirs(p.name))
    log = open(p.dir / "nspawn.log", "wb")  # noqa: SIM115 - handed to the child
    with log:
        proc = subprocess.Popen(["bash", script, str(p.dir), p.machine, p.netns, cgs],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                env={**os.environ, **env})
    (p.dir / "wrapper.pid").write_text(f"{proc.pid}\n")


def _wait_for_ssh(p: SandboxPaths) -> None:
    _write_client_files(p)
    deadline = time.monotonic() + BOOT_TIMEOUT
    wrapper = read_pid(p.dir / "wrapper.pid")
    while time.monotonic() < deadline:
        if wrapper is None or not alive(wrapper):
            tail = (p.dir / "nspawn.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise SandboxError(f"sandbox {p.name}: systemd-nspawn exited: {' / '.join(tail)}")
        listening = _sh("ip", "netns", "exec", p.netns, "ss", "-Hltn", "sport = :22", check=False).stdout
        if listening.strip() and subprocess.run(
            ["ssh", "-F", str(p.ssh_config), p.name, "true"], capture_output=True, check=False
        ).returncode == 0:
            return
        time.sleep(0.1)
    raise SandboxError(f"sandbox {p.name}: no SSH login after {BOOT_TIMEOUT:.0f}s", f"see {p.dir}/nspawn.log")


def info(p: SandboxPaths) -> SandboxInfo:
    leader = leader_pid(p)
    return SandboxInfo(p.name, leader is not None, leader, p.netns, str(p.inventory), str(p.ssh_config))
