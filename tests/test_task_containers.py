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
