"""Which containers a task result names (pure): rollback treats those, and the plan's, as the run's."""

from __future__ import annotations

from typing import Any

import pytest

from safeapply.task_containers import containers_named

CID = "4f" * 32


@pytest.mark.parametrize(("action", "res", "named"), [
    ("containers.podman.podman_container",
     {"invocation": {"module_args": {"name": "web"}}, "container": {"Id": CID, "Name": "web"}}, ("web", CID)),
    ("community.docker.docker_container",
     {"invocation": {"module_args": {"name": "db"}}, "container": {"Id": CID, "Name": "/db"}}, ("db", CID)),
    ("containers.podman.podman_container", {"invocation": {"module_args": {"name": "gone", "state": "absent"}}},
     ("gone",)),
    ("community.docker.docker_compose_v2", {"containers": [{"Name": "app-web-1", "ID": CID[:12]}]},
     ("app-web-1", CID[:12])),
    ("ansible.builtin.command", {"cmd": ["podman", "run", "-d", "--name", "x", "-p", "8080:80", "img"],
                                 "stdout": CID + "\n"}, ("x", CID)),
    ("ansible.builtin.command", {"cmd": ["podman", "run", "-d", "img", "sleep", "1"], "stdout": CID}, (CID,)),
    ("ansible.builtin.shell", {"cmd": "podman create --name=y img && podman start y", "stdout": CID}, ("y", CID)),
    ("ansible.builtin.shell", {"cmd": "/usr/bin/docker container stop -t 0 a b; docker rm -f c"}, ("a", "b", "c")),
    ("command", {"cmd": ["sudo", "podman", "kill", "--signal", "KILL", "web"]}, ("web",)),
    # listing containers names none of them, even when their IDs are printed
    ("ansible.builtin.command", {"cmd": ["podman", "ps", "-aq", "--no-trunc"], "stdout": CID}, ()),
    ("ansible.builtin.command", {"cmd": ["systemctl", "restart", "web"], "stdout": CID}, ()),
    ("ansible.builtin.copy", {"dest": "/etc/x", "container": {"Name": "no"}}, ()),
])
def test_containers_named(action: str, res: dict[str, Any], named: tuple[str, ...]) -> None:
    assert containers_named(action, res) == named


@pytest.mark.parametrize(("cmd", "named"), [
    # global options that take a value, before the verb: their value is not the verb
    (["podman", "--log-level", "debug", "run", "--name", "x", "img"], ("x",)),
    (["podman", "--log-level=debug", "run", "--name", "x", "img"], ("x",)),
    (["docker", "--context", "c", "run", "--name", "x", "img"], ("x",)),
    (["docker", "-c", "c", "container", "rm", "-f", "y"], ("y",)),
    (["docker", "-H", "unix:///run/d.sock", "--tlscacert", "ca.pem", "stop", "web"], ("web",)),
    (["docker", "-l", "warn", "--config", "/tmp/cfg", "create", "--name=z", "img"], ("z",)),
    (["podman", "--url", "unix:///run/podman.sock", "ps", "-a"], ()),
    (["podman", "--connection", "rm", "ps"], ()),  # a connection named `rm`: still `ps`
    (["podman", "-c", "stop", "start", "web"], ("web",)),
    (["podman", "--root", "/var/lib/c", "--runroot", "/run/c", "--storage-driver", "overlay", "--cgroup-manager",
      "systemd", "--events-backend", "file", "--runtime", "crun", "--tmpdir", "/tmp/p", "--identity", "/k",
      "--network-cmd-path", "/usr/bin/slirp4netns", "--module", "m.conf", "kill", "web"], ("web",)),
    (["podman", "--container", "run", "--name", "x", "img"], ("x",)),  # an unknown flag takes no value
    (["podman", "--remote", "--log-level", "info", "container", "stop", "a"], ("a",)),
    (["docker", "--debug", "start", "container"], ("container",)),  # a container named `container`
])
def test_global_options_before_the_verb(cmd: list[str], named: tuple[str, ...]) -> None:
    assert containers_named("ansible.builtin.command", {"cmd": cmd}) == named
