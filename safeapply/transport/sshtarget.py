"""One SSH destination as OpenSSH resolved it (`sshconfig.ssh_target` builds it from `ssh -G`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class SSHTarget:
    """Everything needed to open one SSH connection. Never holds a secret other than an optional password."""

    name: str  # the inventory name (a jump host: "bastion (jump host of web1)"), used in every message
    hostname: str
    user: str
    port: int = 22
    key_files: tuple[str, ...] = ()  # IdentityFile, in OpenSSH's order, paths expanded; missing ones are skipped
    required_keys: tuple[str, ...] = ()  # ansible_ssh_private_key_file: an error when missing
    identities_only: bool = False
    identity_agent: str | None = None  # the ssh-agent socket, None for none
    proxy_command: str | None = None  # %-tokens already expanded; run as `$SHELL -c "exec CMD"`
    proxy_jump: SSHTarget | None = None  # the last hop; its own proxy_jump holds the hops before it
    known_hosts: tuple[str, ...] = ("~/.ssh/known_hosts",)  # UserKnownHostsFile
    global_known_hosts: tuple[str, ...] = ()  # GlobalKnownHostsFile
    host_key_alias: str | None = None
    strict_host_key_checking: str = "ask"  # as `ssh -G` prints it: true, false, ask, accept-new
    timeout: float = 10.0
    password: str | None = field(default=None, repr=False)

    @property
    def key_name(self) -> str:
        """The name host keys are recorded under in known_hosts."""
        if self.host_key_alias:
            return self.host_key_alias
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"

    @property
    def user_known_hosts(self) -> Path:
        return Path(self.known_hosts[0]).expanduser() if self.known_hosts else Path("~/.ssh/known_hosts").expanduser()

    @property
    def accepts_new_keys(self) -> bool:
        """StrictHostKeyChecking accept-new (or no, which safeapply treats as accept-new: a changed key still fails)."""
        return self.strict_host_key_checking in ("accept-new", "false")
