"""Boot and tear down one sandbox host: overlay over the cached rootfs, own netns, systemd-nspawn with systemd
as PID 1. Reached through `ip netns exec NS nc 127.0.0.1 22` (ProxyCommand), or, on a private network
(`network`), through `ip netns exec P-net-NET nc ADDR 22` or a bastion sandbox (ProxyJump).
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path

import yaml

from safeapply.errors import UsageError
from safeapply.sandbox import network
from safeapply.sandbox.containers import containers_env, ensure_containers_rootfs
from safeapply.sandbox.paths import SandboxPaths, cgroup_dirs, controller_key
from safeapply.sandbox.proc import SandboxError, alive, read_pid
from safeapply.sandbox.proc import sh as _sh
from safeapply.sandbox.rootfs import ensure_rootfs
from safeapply.sandbox.teardown import clear_propagation, down

BOOT_TIMEOUT = 90.0
ROOTFS_USERS = ("root", "deploy", "nosudo")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")

__all__ = ["DEFAULTS", "Layout", "SandboxError", "SandboxInfo", "SandboxOptions", "info", "inventory_vars", "up"]


@dataclass(frozen=True)
class Layout:
    """What a sandbox is, as far as reaching it goes: written at boot (options.json), read by `inventory`,
    `ssh`, `list`. Never holds a password."""

    login_user: str = "root"
    root_login: bool = True
    sudo_password: bool = False  # the login user's sudo asks for a password
    network: str | None = None
    address: str | None = None  # on `network`
    via: str | None = None  # the bastion sandbox this one is reached through
    key_in_inventory: bool = True

    @classmethod
    def load(cls, p: SandboxPaths) -> Layout:
        try:
            return cls(**json.loads(p.options.read_text()))
        except FileNotFoundError:
            return cls()

    def proxy_command(self, p: SandboxPaths) -> str:
        if self.network and self.address:
            return network.proxy_command(self.network, self.address)
        return p.proxy_command


@dataclass(frozen=True)
class SandboxOptions:
    """What `sandbox up` is asked for. The password only goes to chpasswd's stdin inside the overlay."""

    layout: Layout = Layout()
    sudo_password: str | None = field(default=None, repr=False)
    authorized_keys: tuple[str, ...] = ()  # public key lines, added for the login user
    containers: bool = False  # boot the rootfs with podman and local images (sandbox/containers.py)

    def check(self) -> None:
        user = self.layout.login_user
        if not USER_RE.match(user):
            raise UsageError(f"bad login user {user!r}", "use a POSIX user name: a-z, 0-9, '_', '-'")
        if user == "root" and not self.layout.root_login:
            raise UsageError("--no-root-login needs --login-user USER (someone must be able to log in)")
        if user == "root" and self.sudo_password is not None:
            raise UsageError("a sudo password needs --login-user USER (root does not use sudo)")
        if self.sudo_password is not None and (not self.sudo_password or "\n" in self.sudo_password):
            raise UsageError("the sudo password is empty or spans lines", "put one line in the password file")
        if self.layout.network is not None:
            network.netns(self.layout.network)  # validates the name


DEFAULTS = SandboxOptions()  # root login, deploy with passwordless sudo, loopback only


@dataclass(frozen=True)
class SandboxInfo:
    name: str
    running: bool
    leader_pid: int | None
    netns: str
    inventory: str
    ssh_config: str
    state: str = "not running"  # running | booting | not running
    login_user: str = "root"
    network: str | None = None
    address: str | None = None
    via: str | None = None

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
    """The prefix's controller key, made once: under a lock, written aside and renamed into place, so boots
    started together (`sandbox up a b`, or two commands) all get the same complete key."""
    key = controller_key()
    if key.exists():
        return key
    key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(key.parent / ".key.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not key.exists():
            tmp = key.with_name(f".{key.name}.{os.getpid()}")
            for stale in (tmp, Path(f"{tmp}.pub")):
                stale.unlink(missing_ok=True)
            _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "safeapply-sandbox", "-f", str(tmp))
            os.replace(f"{tmp}.pub", f"{key}.pub")
            os.replace(tmp, key)  # last: the private key's presence means the pair is complete
    return key


def _passwd_ids(root: Path, user: str) -> tuple[int, int, Path]:
    for line in (root / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == user:
            return int(f[2]), int(f[3]), root / f[5].lstrip("/")
    raise SandboxError(f"user {user} missing from the sandbox rootfs")


def _authorize(root: Path, user: str, keys: bytes) -> None:
    uid, gid, home = _passwd_ids(root, user)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_bytes(keys)
    (ssh_dir / "authorized_keys").chmod(0o600)
    for path in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, uid, gid)


def _seed_login_user(m: Path, opts: SandboxOptions) -> None:
    """The login user (created when the rootfs has none of that name: passwordless sudo), its sudo password
    (chpasswd inside the overlay: the password never reaches argv), root login off."""
    user = opts.layout.login_user
    sudoers = m / "etc/sudoers.d" / user
    if user not in ROOTFS_USERS:
        _sh("chroot", str(m), "useradd", "-m", "-s", "/bin/bash", user)
        sudoers.write_text(f"{user} ALL=(ALL) NOPASSWD: ALL\n")
    if opts.sudo_password is not None:
        _sh("chroot", str(m), "chpasswd", stdin=f"{user}:{opts.sudo_password}\n")
        sudoers.write_text(f"{user} ALL=(ALL) ALL\n")
    if sudoers.exists():
        sudoers.chmod(0o440)
    if not opts.layout.root_login:
        conf = m / "etc/ssh/sshd_config.d/sandbox.conf"
        conf.write_text(re.sub(r"(?m)^PermitRootLogin .*$", "PermitRootLogin no", conf.read_text()))


def _seed_files(p: SandboxPaths, opts: SandboxOptions) -> None:
    """Per-host files written into the overlay before boot: hostname, host key, users, authorized keys."""
    m, lay = p.merged, opts.layout
    (m / "etc/hostname").write_text(p.name + "\n")
    own = f"{lay.address}\t{p.name}\n" if lay.address else ""
    (m / "etc/hosts").write_text(f"127.0.0.1\tlocalhost {p.name}\n{own}::1\tlocalhost ip6-localhost ip6-loopback\n")
    hostkey = m / "etc/ssh/ssh_host_ed25519_key"
    _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{p.name}", "-f", str(hostkey))
    pub = Path(str(hostkey) + ".pub").read_text().split()
    names = p.machine + (f",{lay.address}" if lay.address else "")  # via a bastion, ssh checks the address
    p.known_hosts.write_text(f"{names} {pub[0]} {pub[1]}\n")
    _seed_login_user(m, opts)
    authorized = Path(str(controller_key()) + ".pub").read_bytes()
    for user in dict.fromkeys((*ROOTFS_USERS, lay.login_user)):
        extra = "".join(k.strip() + "\n" for k in opts.authorized_keys) if user == lay.login_user else ""
        _authorize(m, user, authorized + extra.encode())


def _ssh_block(p: SandboxPaths, lay: Layout, patterns: str) -> str:
    key = controller_key()
    route = (f"  HostName {lay.address}\n  ProxyJump {SandboxPaths(lay.via).machine}\n" if lay.via
             else f"  HostName {p.machine}\n  ProxyCommand {lay.proxy_command(p)}\n")
    ident = f"  IdentityFile {key}\n  IdentitiesOnly yes\n" if lay.key_in_inventory else ""
    return (f"Host {patterns}\n{route}  User {lay.login_user}\n{ident}  BatchMode yes\n"
            f"  UserKnownHostsFile {p.known_hosts}\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n"
            f"  ConnectTimeout 5\n")


def _write_client_files(p: SandboxPaths, lay: Layout) -> None:
    """ssh_config (`ssh -F`; via a bastion it also holds the bastion's entry, for ProxyJump) and inventory."""
    config = _ssh_block(p, lay, f"{p.name} {p.machine}")
    if lay.via:
        bastion = SandboxPaths(lay.via)
        config += _ssh_block(bastion, Layout.load(bastion), bastion.machine)
    p.ssh_config.write_text(config)
    p.inventory.write_text(yaml.safe_dump({"all": {"hosts": {p.name: inventory_vars(p)}}}, sort_keys=False))


def inventory_vars(p: SandboxPaths, user: str | None = None) -> dict[str, str]:
    lay = Layout.load(p)
    # the prefixed name (or a machine-wide unique address): unique across prefixes, so Ansible's ControlPath
    # (host, port, user) is too
    out = {"ansible_host": lay.address if lay.via and lay.address else p.machine,
           "ansible_user": user or lay.login_user}
    if lay.key_in_inventory:
        out["ansible_ssh_private_key_file"] = str(controller_key())
    route = (f"-F {p.ssh_config} -o ProxyJump={SandboxPaths(lay.via).machine}" if lay.via
             else f'-o ProxyCommand="{lay.proxy_command(p)}"')
    out["ansible_ssh_common_args"] = f"{route} -o UserKnownHostsFile={p.known_hosts} -o StrictHostKeyChecking=yes"
    out["ansible_python_interpreter"] = "/usr/bin/python3"
    return out


def _resolve_layout(opts: SandboxOptions) -> SandboxOptions:
    """--via: the bastion must be up and on a network; this sandbox joins that network."""
    lay = opts.layout
    if lay.via is None:
        return opts
    bastion = SandboxPaths(lay.via)
    blay = Layout.load(bastion)
    if not bastion.inventory.exists():
        raise UsageError(f"no running sandbox {lay.via} to use as bastion", "boot it first, with --network NET")
    if blay.network is None or blay.via is not None:
        raise UsageError(f"sandbox {lay.via} is on no network, or is itself behind a bastion",
                         "boot the bastion with --network NET")
    if lay.network not in (None, blay.network):
        raise UsageError(f"sandbox {lay.via} is on network {blay.network}, not {lay.network}")
    return replace(opts, layout=replace(lay, network=blay.network))


def up(name: str, opts: SandboxOptions = DEFAULTS) -> SandboxInfo:
    """Boot one sandbox and wait until SSH logins work. On any failure everything made so far is removed."""
    require_host_support()
    opts.check()
    p = SandboxPaths(name)
    opts = _resolve_layout(opts)
    p.dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        p.dir.mkdir()  # the claim: of two boots of one name, one goes on
    except FileExistsError:
        raise UsageError(f"sandbox {name} already exists", f"`safeapply sandbox down {name}` first") from None
    try:
        _boot(p, opts)
    except BaseException:
        down(name, fast=True)
        raise
    return info(p)


def _boot(p: SandboxPaths, opts: SandboxOptions) -> None:
    rootfs = ensure_containers_rootfs() if opts.containers else ensure_rootfs()
    ensure_controller_key()
    clear_propagation(p.machine)  # what a killed earlier sandbox of the same name left behind
    for sub in ("upper", "work", "merged"):
        (p.dir / sub).mkdir()
    _sh("mount", "-t", "overlay", p.machine, "-o",
        f"lowerdir={rootfs},upperdir={p.dir / 'upper'},workdir={p.dir / 'work'}", str(p.merged))
    _sh("ip", "netns", "add", p.netns)
    _sh("ip", "-n", p.netns, "link", "set", "lo", "up")
    lay = opts.layout
    if lay.network:
        lay = replace(lay, address=network.attach(lay.network, p.netns))
    lay = replace(lay, sudo_password=opts.sudo_password is not None)
    p.options.write_text(json.dumps(asdict(lay)) + "\n")
    _seed_files(p, replace(opts, layout=lay))
    _start_supervisor(p, containers_env() if opts.containers else {})
    _wait_for_ssh(p, lay)
    _write_client_files(p, lay)  # last: an inventory means the sandbox is up


def _start_supervisor(p: SandboxPaths, env: dict[str, str]) -> None:
    script = str(resources.files("safeapply.sandbox") / "supervise.sh")
    cgs = " ".join(str(d) for d in cgroup_dirs(p.name))
    log = open(p.dir / "nspawn.log", "wb")  # noqa: SIM115 - handed to the child
    with log:
        proc = subprocess.Popen(["bash", script, str(p.dir), p.machine, p.netns, cgs],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                env={**os.environ, **env})
    (p.dir / "wrapper.pid").write_text(f"{proc.pid}\n")


def _boot_probe(p: SandboxPaths, lay: Layout) -> list[str]:
    """`ssh ... true` straight to the sandbox (never via its bastion), with the controller key: the login works."""
    opts = {"HostName": p.machine, "User": lay.login_user, "ProxyCommand": lay.proxy_command(p),
            "IdentityFile": str(controller_key()), "IdentitiesOnly": "yes", "BatchMode": "yes",
            "UserKnownHostsFile": str(p.known_hosts), "StrictHostKeyChecking": "yes", "LogLevel": "ERROR",
            "ConnectTimeout": "5"}
    return ["ssh", "-F", "/dev/null", *(a for k, v in opts.items() for a in ("-o", f"{k}={v}")), p.name, "true"]


def _wait_for_ssh(p: SandboxPaths, lay: Layout) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT
    wrapper = read_pid(p.dir / "wrapper.pid")
    probe = _boot_probe(p, lay)
    while time.monotonic() < deadline:
        if wrapper is None or not alive(wrapper):
            tail = (p.dir / "nspawn.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise SandboxError(f"sandbox {p.name}: systemd-nspawn exited: {' / '.join(tail)}")
        listening = _sh("ip", "netns", "exec", p.netns, "ss", "-Hltn", "sport = :22", check=False).stdout
        if listening.strip() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.1)
    raise SandboxError(f"sandbox {p.name}: no SSH login after {BOOT_TIMEOUT:.0f}s", f"see {p.dir}/nspawn.log")


def info(p: SandboxPaths) -> SandboxInfo:
    """What is true now: running = its init is alive and it answered SSH at boot (it has an inventory);
    booting = its supervisor is alive but it has not yet answered."""
    leader = leader_pid(p)
    wrapper = read_pid(p.dir / "wrapper.pid")
    ready = p.inventory.exists()
    state = ("running" if leader is not None and ready
             else "booting" if not ready and wrapper is not None and alive(wrapper) else "not running")
    lay = Layout.load(p)
    return SandboxInfo(p.name, state == "running", leader, p.netns, str(p.inventory), str(p.ssh_config), state,
                       lay.login_user, lay.network, lay.address, lay.via)
