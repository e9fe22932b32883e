"""What rollback does to units, decided from the pre-run scan and the scan after files came back (pure)."""

from __future__ import annotations

from safeapply.compare import state_diff
from safeapply.probe.model import Container, HostState, Unit
from safeapply.rollback import container_actions, containers_left, unit_actions, written_units


def _state(*units: Unit) -> HostState:
    return HostState("h", units=units)


def test_a_unit_the_run_created_is_stopped_and_its_failed_state_cleared() -> None:
    running = Unit("new.service", "not-found", "active", "running", "", main_pid=42)
    # a stop can race the unit's own failing exit; reset-failed makes "inactive" certain
    assert unit_actions(_state(), _state(running), []) == [("stop", "new.service"),
                                                           ("reset-failed", "new.service")]
    looping = Unit("new.service", "not-found", "activating", "auto-restart", "")
    assert unit_actions(_state(), _state(looping), []) == [("stop", "new.service"),
                                                           ("reset-failed", "new.service")]
    failed = Unit("new.service", "not-found", "failed", "failed", "")
    assert unit_actions(_state(), _state(failed), []) == [("reset-failed", "new.service")]


def test_a_unit_the_run_stopped_is_started_and_one_it_restarted_is_restarted() -> None:
    before = _state(Unit("a.service", "loaded", "active", "running", "enabled", main_pid=1),
                    Unit("b.service", "loaded", "active", "running", "enabled", main_pid=2))
    now = _state(Unit("b.service", "loaded", "active", "running", "enabled", main_pid=3))
    assert unit_actions(before, now, []) == [("restart", "b.service"), ("start", "a.service")]


def test_the_runs_own_deadman_units_are_left_to_their_guard() -> None:
    switch = Unit("safeapply-deadman-x.timer", "loaded", "active", "waiting", "")
    assert unit_actions(_state(), _state(switch), []) == []


OLD_IMAGE, NEW_IMAGE = "a" * 64, "b" * 64


def _web(cid: str, image_id: str, state: str = "running", **kw: object) -> Container:
    return Container("podman", cid, "web", "docker.io/library/httpd-lite:1", state, image_id=image_id, **kw)  # type: ignore[arg-type]


def test_containers_the_run_created_stopped_or_started() -> None:
    keep = Container("podman", "k1", "keep", "localhost/busybox:latest", "running")
    idle = Container("podman", "i1", "idle", "localhost/busybox:latest", "exited")
    new = Container("docker", "n1", "new", "x", "running")
    now = HostState("h", containers=(new, Container("podman", "k1", "keep", "localhost/busybox:latest", "exited"),
                                     Container("podman", "i1", "idle", "localhost/busybox:latest", "running")))
    assert container_actions(HostState("h", containers=(keep, idle)), now) == [
        ["docker", "rm", "-f", "n1"], ["podman", "start", "k1"], ["podman", "stop", "i1"]]


def test_a_replaced_podman_container_is_created_again_from_its_command_with_the_old_image_id() -> None:
    cmd = ("/usr/bin/podman", "run", "--name", "web", "--detach=True", "-d", "-p", "8083:8080", "httpd-lite:1",
           "httpd", "-f")
    before = HostState("h", containers=(_web("old", OLD_IMAGE, create_command=cmd),))
    now = HostState("h", containers=(_web("new", NEW_IMAGE),))
    assert container_actions(before, now) == [
        ["podman", "rm", "-f", "new"],
        ["podman", "create", "--name", "web", "-p", "8083:8080", OLD_IMAGE, "httpd", "-f"],
        ["podman", "start", "web"]]
    stopped = HostState("h", containers=(_web("old", OLD_IMAGE, "exited", create_command=cmd),))
    assert container_actions(stopped, HostState("h"))[-1][:2] == ["podman", "create"]  # created, not started
    # what cannot be recreated is left to the rescan, which reports it: docker keeps no command line
    docker = HostState("h", containers=(Container("docker", "d1", "db", "postgres:16", "running", image_id="c" * 64),))
    assert container_actions(docker, HostState("h")) == []
    assert state_diff(docker, HostState("h")) == [f"container db: was running ({'c' * 12}), now differs"]


def test_same_name_with_another_image_is_a_difference() -> None:
    before = HostState("h", containers=(_web("old", OLD_IMAGE),))
    assert state_diff(before, HostState("h", containers=(_web("new", NEW_IMAGE),))) == [
        f"container web: was running ({OLD_IMAGE[:12]}), now differs"]
    assert state_diff(before, HostState("h", containers=(_web("again", OLD_IMAGE),))) == []


def test_only_the_runs_containers_are_put_back_others_are_left_and_reported() -> None:
    """Issue 11 item 13: a container the run cannot attribute (another run, a user, a timer) is left alone."""
    bystander = Container("podman", "b" * 64, "bystander", "localhost/busybox:latest", "running")
    before = HostState("h", containers=(bystander,))
    mine = Container("podman", "m" * 64, "mine", "localhost/busybox:latest", "running")
    unnamed = Container("podman", "1" * 64, "eager_hopper", "localhost/busybox:latest", "running")
    theirs = Container("podman", "t" * 64, "theirs", "localhost/busybox:latest", "running")
    quadlet = Container("podman", "q" * 64, "systemd-web", "localhost/busybox:latest", "running", unit="web.service")
    now = HostState("h", containers=(mine, unnamed, theirs, quadlet,
                                     Container("podman", "b" * 64, "bystander", "localhost/busybox:latest", "exited")))
    left = containers_left(before, now, frozenset({"mine", "1" * 64}), frozenset({"web.service"}))
    assert [(c["name"], c["why"].split(";")[0]) for c in left] == [
        ("theirs", "created during the run"), ("bystander", "stopped during the run")]
    ids = frozenset(c["id"] for c in left)
    assert container_actions(before, now, ids) == [
        ["podman", "rm", "-f", "m" * 64], ["podman", "rm", "-f", "1" * 64], ["podman", "rm", "-f", "q" * 64]]
    after = HostState("h", containers=(theirs, now.containers[-1]))  # what the rollback leaves
    assert state_diff(before, after, other_containers=frozenset({"theirs", "bystander"})) == []
    assert state_diff(before, after) != []


def test_a_short_id_on_a_tasks_command_line_attributes_the_container() -> None:
    before = HostState("h", containers=(Container("podman", "a1b2c3d4e5f6" + "0" * 52, "x", "i", "running"),))
    now = HostState("h", containers=(Container("podman", "a1b2c3d4e5f6" + "0" * 52, "x", "i", "exited"),))
    assert containers_left(before, now, frozenset({"a1b2c3d4e5f6"}), frozenset()) == []
    assert containers_left(before, now, frozenset({"a1b2c3"}), frozenset())[0]["name"] == "x"  # too short to tell


def test_a_quadlet_file_the_run_wrote_makes_its_service_and_container_the_runs() -> None:
    written = written_units(HostState("h"), ["/etc/containers/systemd/web.container",
                                             "/etc/containers/systemd/apps/db.container.d/10-x.conf"])
    assert written == {"web.service", "db.service"}


def test_a_socket_activated_service_that_exited_when_idle_is_nobodys_doing() -> None:
    """podman 5's netavark-dhcp-proxy.service (and docker.service behind docker.socket) start when a client
    connects and exit when idle: a run whose rollback found it stopped reported "differs" (exit 21) at random."""
    sock = Unit("netavark-dhcp-proxy.socket", "loaded", "active", "listening", "enabled")
    was = Unit("netavark-dhcp-proxy.service", "loaded", "active", "running", "enabled", main_pid=7)
    idle = Unit("netavark-dhcp-proxy.service", "loaded", "inactive", "dead", "enabled")
    before, now = _state(sock, was), _state(sock, idle)
    assert unit_actions(before, now, []) == []
    assert state_diff(before, now) == [] and state_diff(now, before) == []
    plain = Unit("web.service", "loaded", "active", "running", "enabled", main_pid=8)  # no socket: as before
    assert state_diff(_state(sock, plain), _state(sock)) == ["unit web.service: was active/enabled, now absent"]
    disabled = Unit("netavark-dhcp-proxy.service", "loaded", "inactive", "dead", "disabled")
    assert state_diff(before, _state(sock, disabled)) != []  # being enabled still counts
