"""Private networks shared by sandboxes (`sandbox up --network NET`): a bridge `br0` in a network namespace of
our own, `P-net-NET`, and per sandbox a veth pair: `vhN` on the bridge, `eth0` with 10.231.S.N/24 in the
sandbox's netns. Nothing is put on this machine's own interfaces: the controller reaches a sandbox with
`ip netns exec P-net-NET nc 10.231.S.N 22` as ProxyCommand, so SSH arrives on the sandbox's eth0.

The kernel holds the state (the bridge's address is the subnet, veth names are the host numbers), so a killed
run leaves nothing to reconcile. Subnets are unique on the machine, across prefixes: addresses then are too,
and so are the SSH ControlPaths Ansible derives from them.
"""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator
from contextlib import contextmanager

from safeapply.errors import UsageError
from safeapply.sandbox.paths import NAME_RE, NETWORK_NETNS, PREFIX_RE, cache_dir, prefix
from safeapply.sandbox.proc import SandboxError, sh

NET = "10.231"
BRIDGE = "br0"
IFACE = "eth0"  # the sandbox's side: what a firewall rule on the network interface names
FIRST_HOST = 11  # .1 is the bridge (the controller's end)
_ANY_NETWORK = re.compile(PREFIX_RE.pattern.rstrip("$") + "-" + NETWORK_NETNS)


def netns(network: str) -> str:
    if not NAME_RE.match(network):
        raise UsageError(f"bad network name {network!r}", "use 1-20 chars: lowercase letters, digits, '-'")
    return f"{prefix()}-{NETWORK_NETNS}{network}"


def proxy_command(network: str, address: str) -> str:
    return f"ip netns exec {netns(network)} nc {address} %p"


@contextmanager
def _locked() -> Iterator[None]:
    """One change to networks at a time on this machine (subnets are allocated machine-wide)."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / ".network.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _all_netns() -> list[str]:
    return [line.split()[0] for line in sh("ip", "netns", "list").stdout.splitlines() if line.strip()]


def ours() -> list[str]:
    """The network namespaces of this prefix."""
    return [ns for ns in _all_netns() if ns.startswith(f"{prefix()}-{NETWORK_NETNS}")]


def _subnet(ns: str) -> int | None:
    out = sh("ip", "-n", ns, "-4", "-o", "addr", "show", "dev", BRIDGE, check=False).stdout
    m = re.search(rf"inet {re.escape(NET)}\.(\d+)\.1/24", out)
    return int(m.group(1)) if m else None


def _hosts(ns: str) -> set[int]:
    out = sh("ip", "-n", ns, "-o", "link", "show", "type", "veth", check=False).stdout
    return {int(m.group(1)) for m in re.finditer(r"^\d+: vh(\d+)@", out, re.M)}


def _create(ns: str) -> None:
    used = {_subnet(x) for x in _all_netns() if _ANY_NETWORK.match(x)}
    free = [s for s in range(256) if s not in used]
    if not free:
        raise SandboxError(f"no free subnet in {NET}.0.0/16 for network {ns}", "remove unused sandbox networks")
    sh("ip", "netns", "add", ns)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", ns, "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "-n", ns, "addr", "add", f"{NET}.{free[0]}.1/24", "dev", BRIDGE)
    sh("ip", "-n", ns, "link", "set", BRIDGE, "up")


def attach(network: str, sandbox_netns: str) -> str:
    """Put a sandbox's netns on a network (created on first use); returns its address there."""
    ns = netns(network)
    with _locked():
        if ns not in _all_netns():
            _create(ns)
        subnet = _subnet(ns)
        if subnet is None:
            raise SandboxError(f"network namespace {ns} has no {BRIDGE}", f"`ip netns del {ns}` and retry")
        free = [n for n in range(FIRST_HOST, 255) if n not in _hosts(ns)]
        if not free:
            raise SandboxError(f"network {network} is full ({255 - FIRST_HOST} sandboxes)")
        veth, address = f"vh{free[0]}", f"{NET}.{subnet}.{free[0]}"
        sh("ip", "-n", ns, "link", "add", veth, "type", "veth", "peer", "name", IFACE, "netns", sandbox_netns)
        sh("ip", "-n", ns, "link", "set", veth, "master", BRIDGE, "up")
        sh("ip", "-n", sandbox_netns, "addr", "add", f"{address}/24", "dev", IFACE)
        sh("ip", "-n", sandbox_netns, "link", "set", IFACE, "up")
    return address


def detach(sandbox_netns: str) -> None:
    """Remove a sandbox's veth pair (both ends go at once), then its network if it was the last one on it."""
    sh("ip", "-n", sandbox_netns, "link", "del", IFACE, check=False)
    prune()


def prune(everything: bool = False) -> None:
    """Remove this prefix's networks that no sandbox is on (all of them with `everything`)."""
    with _locked():
        for ns in ours():
            if everything or not _hosts(ns):
                sh("ip", "netns", "del", ns, check=False)
