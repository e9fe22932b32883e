"""The ground everything else is tested on: real hosts, isolated from each other and from this machine."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from safeapply import sandbox as sb
from safeapply.cli import main

pytestmark = pytest.mark.sandbox


def test_systemd_and_ssh_through_our_transport(host_a, host_b) -> None:
    for h in (host_a, host_b):
        with h.transport() as t:
            assert t.run(["systemctl", "is-system-running", "--wait"], timeout=60).text.strip() in ("running",)
            assert t.run(["hostname"]).text.strip() == h.name
            assert t.run(["cat"], stdin=b"x" * 300_000).stdout == b"x" * 300_000


def test_port_on_a_is_invisible_on_b_and_here(host_a, host_b) -> None:
    host_a.sh("systemd-run --unit=iso9090 -p WorkingDirectory=/tmp python3 -m http.server 9090 --bind 0.0.0.0")
    try:
        host_a.sh("for i in $(seq 50); do ss -Hltn 'sport = :9090' | grep -q . && exit 0; sleep 0.1; done; exit 1")
        assert host_b.sh("ss -Hltn 'sport = :9090'").strip() == ""
        here = subprocess.run(["ss", "-Hltn", "sport = :9090"], capture_output=True, text=True).stdout
        assert here.strip() == ""
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", 9090), timeout=1):
            pass
        with host_a.transport() as t:
            assert t.run(["systemctl", "is-active", "iso9090"]).text.strip() == "active"
    finally:
        host_a.sh("systemctl stop iso9090")


def test_this_machines_etc_is_untouched(host_a) -> None:
    host_a.sh("echo probe > /etc/safeapply-isolation-probe")
    try:
        assert not Path("/etc/safeapply-isolation-probe").exists()
        assert (host_a.paths.dir / "upper/etc/safeapply-isolation-probe").exists()
    finally:
        host_a.sh("rm /etc/safeapply-isolation-probe")


def test_deploy_user_uses_sudo_n(host_a) -> None:
    with host_a.transport(user="deploy") as t:
        assert t.run(["id", "-u"], sudo=True).text.strip() == "0"
        assert t.run(["id", "-un"]).text.strip() == "deploy"


def test_up_down_leaves_nothing(sandbox_factory) -> None:
    sandbox_factory("gone")
    assert "gone" in sb.known_names()
    sb.down("gone")
    assert not [x for x in sb.leftovers() if "gone" in x]
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "-gone" not in netns


def test_reboot_comes_back(sandbox_factory) -> None:
    import time
    import warnings

    h = sandbox_factory("reboot")
    boot1 = h.sh("cat /proc/sys/kernel/random/boot_id").strip()
    h.sh_rc("systemctl reboot")
    deadline = time.monotonic() + 60
    state = ""
    while time.monotonic() < deadline:
        out = h.sh_rc("systemctl is-system-running --wait")[1]
        state = out.strip()
        if state in ("running", "degraded"):
            break
        time.sleep(0.5)
    assert h.sh("cat /proc/sys/kernel/random/boot_id").strip() != boot1  # a new boot, reached over SSH
    failed = h.sh("systemctl --failed --no-legend --plain --no-pager | awk '{print $1}'").split()
    assert state in ("running", "degraded") and "ssh.service" not in failed, (state, failed)
    if failed:  # seen once on a loaded CI machine; name them so the next run tells us which
        warnings.warn(f"after reboot, failed units: {failed}", stacklevel=1)
    sb.down("reboot")


def test_cli_list_and_inventory(host_a, capsys) -> None:
    assert main(["sandbox", "list", "--json"]) == 0
    assert '"name": "a"' in capsys.readouterr().out
    assert main(["sandbox", "inventory", "a"]) == 0
    assert "ansible_ssh_common_args" in capsys.readouterr().out
    assert main(["sandbox", "up", "BAD_NAME"]) == 2
