"""Plan semantics (pure): intent vs host state -> findings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safeapply.intent.model import Bind, ContainerOp, Intent, TaskRef, UnitOp
from safeapply.plan import BLOCKING, WARNING, expectations, overlaps, plan
from safeapply.probe.model import Container, Facts, HostState, Listener, Owner, PortBinding, Unit


def ref(order: int, name: str = "t") -> TaskRef:
    return TaskRef(order=order, play="p", name=name, action="x", path=f"pb.yml:{order}")


def held(port: int, unit: str = "node_exporter.service", pid: int = 412, address: str = "0.0.0.0",
         proto: str = "tcp") -> Listener:
    return Listener(proto, address, port, (Owner(pid, "node_exporter", ("/usr/bin/node_exporter",), unit),))


def host(*listeners: Listener, units: tuple[Unit, ...] = (), v6only: bool = False,
         containers: tuple[Container, ...] = ()) -> HostState:
    return HostState("h", units=units, listeners=listeners, containers=containers,
                     facts=Facts(bindv6only=v6only))


def container(order: int, port: int, name: str = "node-exporter", image: str = "prom/node-exporter",
              address: str | None = None, proto: str = "tcp") -> tuple[ContainerOp, Bind]:
    r = ref(order, f"run {name}")
    return (ContainerOp("docker", name, image, "started", "", r),
            Bind(proto, address, port, r, "container", "container", name))


def intent(*items: object) -> Intent:
    i = Intent("h")
    for it in items:
        if isinstance(it, Bind):
            i.binds.append(it)
        elif isinstance(it, ContainerOp):
            i.containers.append(it)
        elif isinstance(it, UnitOp):
            i.units.append(it)
    return i


@pytest.mark.parametrize(("a", "b", "v6only", "expected"), [
    ("0.0.0.0", "127.0.0.1", False, True),
    ("127.0.0.1", "127.0.0.2", False, False),
    ("127.0.0.1", "127.0.0.1", False, True),
    ("::", "0.0.0.0", False, True),
    ("::", "0.0.0.0", True, False),
    ("::", "127.0.0.1", False, True),
    ("::", "::1", True, True),
    ("::1", "127.0.0.1", False, False),
    ("::ffff:127.0.0.1", "127.0.0.1", True, True),
    (None, "10.0.0.1", True, True),
    ("0.0.0.0", "::1", False, False),
])
def test_overlap_semantics(a: str | None, b: str, v6only: bool, expected: bool) -> None:
    assert overlaps("tcp", a, "tcp", b, v6only) is expected
    assert overlaps("tcp", b, "tcp", a, v6only) is expected


def test_tcp_and_udp_never_collide() -> None:
    assert not overlaps("tcp", "0.0.0.0", "udp", "0.0.0.0", False)
    c, b = container(0, 69, proto="udp")
    assert plan(intent(c, b), host(held(69, proto="tcp"))) == []


ADDRS = st.sampled_from([None, "0.0.0.0", "::", "127.0.0.1", "127.0.0.2", "::1", "10.1.2.3", "::ffff:10.1.2.3"])


@given(ADDRS, ADDRS, st.booleans())
def test_overlap_is_symmetric(a: str | None, b: str | None, v6only: bool) -> None:
    assert overlaps("tcp", a, "tcp", b, v6only) == overlaps("tcp", b, "tcp", a, v6only)


def test_seed_case_blocks_naming_unit_and_pid() -> None:
    c, b = container(0, 9090)
    findings = plan(intent(c, b), host(held(9090)))
    port = [f for f in findings if f.code == "port-in-use"]
    assert len(port) == 1 and port[0].severity == BLOCKING
    assert (port[0].unit, port[0].pid, port[0].port) == ("node_exporter.service", 412, 9090)
    assert "node_exporter.service" in port[0].message and "PID 412" in port[0].message
    assert "stop and disable node_exporter.service" in port[0].fix


def test_owner_stopped_earlier_is_no_conflict_but_later_is() -> None:
    c, b = container(1, 9090)
    assert plan(intent(UnitOp("node_exporter.service", "stop", ref(0)), c, b), host(held(9090))) == []
    late = plan(intent(c, b, UnitOp("node_exporter.service", "stop", ref(2))), host(held(9090)))
    assert [f.code for f in late] == ["port-in-use"]


def test_two_specific_addresses_on_one_port_do_not_collide() -> None:
    c, b = container(0, 8080, address="127.0.0.2")
    assert plan(intent(c, b), host(held(8080, address="127.0.0.1"))) == []


def test_v6_wildcard_listener_and_bindv6only() -> None:
    c, b = container(0, 9090, address="0.0.0.0")
    assert [f.code for f in plan(intent(c, b), host(held(9090, address="::")))] == ["port-in-use"]
    assert plan(intent(c, b), host(held(9090, address="::"), v6only=True)) == []


def test_same_unit_reconfigured_is_not_a_conflict() -> None:
    r = ref(0)
    b = Bind("tcp", None, 9090, r, "unit", "unit", "node_exporter.service")
    assert plan(intent(b), host(held(9090))) == []


def test_same_service_as_unit_and_container() -> None:
    prom = Unit("prometheus.service", "loaded", "active", "running", "enabled", 300)
    c, b = container(0, 9091, name="prom", image="prom/prometheus:v2.53.0")
    findings = plan(intent(c, b), host(units=(prom,)))
    assert [(f.code, f.severity, f.unit) for f in findings] == [("duplicate-service", BLOCKING,
                                                                  "prometheus.service")]
    stopped = intent(UnitOp("prometheus.service", "stop", ref(-1)), UnitOp("prometheus.service", "disable",
                     ref(-1)), c, b)
    assert plan(stopped, host(units=(prom,))) == []
    only_stopped = intent(UnitOp("prometheus.service", "stop", ref(-1)), c, b)
    assert [(f.code, f.severity) for f in plan(only_stopped, host(units=(prom,)))] == [
        ("duplicate-service", WARNING)]


def test_two_tasks_binding_the_same_port() -> None:
    c1, b1 = container(0, 8080, name="a", image="nginx")
    c2, b2 = container(1, 8080, name="b", image="caddy")
    findings = plan(intent(c1, b1, c2, b2), host())
    assert [(f.code, f.severity) for f in findings] == [("port-twice", BLOCKING)]
    c3, b3 = container(1, 8080, name="b", image="caddy", proto="udp")
    assert plan(intent(c1, b1, c3, b3), host()) == []


def test_unit_started_that_is_failed_or_restart_looping() -> None:
    failed = Unit("web.service", "loaded", "failed", "failed", "enabled")
    looping = Unit("api.service", "loaded", "activating", "auto-restart", "enabled", 0, 7)
    i = intent(UnitOp("web.service", "start", ref(0)), UnitOp("api.service", "restart", ref(1)))
    found = {(f.code, f.unit, f.severity) for f in plan(i, host(units=(failed, looping)))}
    assert found == {("unit-failed", "web.service", WARNING), ("unit-restart-loop", "api.service", WARNING)}


def test_running_container_publishing_the_port() -> None:
    other = Container("docker", "abc", "old-agent", "prom/node-exporter", "running",
                      (PortBinding("tcp", "", 9090, 9100),))
    c, b = container(0, 9090, name="new", image="grafana/agent")
    assert [f.container for f in plan(intent(c, b), host(containers=(other,)))] == ["old-agent"]
    c, b = container(0, 9090, name="old-agent", image="prom/node-exporter")
    assert plan(intent(c, b), host(containers=(other,))) == []


def test_expectations() -> None:
    c, b = container(2, 9090)
    i = intent(UnitOp("node_exporter.service", "stop", ref(0)), UnitOp("node_exporter.service", "disable",
               ref(0)), UnitOp("web.service", "start", ref(1)), UnitOp("web.service", "enable", ref(1)), c, b)
    e = expectations(i)
    assert e.units_active == ["web.service"] and e.units_enabled == ["web.service"]
    assert e.containers_running == ["node-exporter"] and [x.port for x in e.ports] == [9090]


# ---- the timeline: a port is taken when its owner starts, freed when the play stops its holder -------------

def _handover(*, stop: bool) -> Intent:
    """Write new.service for 9090 (0), maybe stop + disable the holder (1), start new.service (2)."""
    write, start = ref(0, "write unit"), ref(2, "start new")
    items: list[object] = [UnitOp("new.service", "install", write),
                           Bind("tcp", None, 9090, write, "unit", "unit", "new.service")]
    if stop:
        items += [UnitOp("node_exporter.service", "stop", ref(1)), UnitOp("node_exporter.service", "disable",
                                                                          ref(1))]
    return intent(*items, UnitOp("new.service", "start", start), UnitOp("new.service", "enable", start))


def test_unit_handover_after_the_unit_file_is_written_is_no_collision() -> None:
    assert plan(_handover(stop=True), host(held(9090))) == []


def test_unit_handover_without_the_stop_names_the_starting_task() -> None:
    [f] = plan(_handover(stop=False), host(held(9090)))
    assert (f.code, f.severity, f.unit, f.task.name if f.task else None) == (
        "port-in-use", BLOCKING, "node_exporter.service", "start new")
    assert "'start new'" in f.message and "node_exporter.service" in f.message


def test_a_unit_written_but_never_started_binds_nothing_during_the_run() -> None:
    w = ref(0, "write unit")
    i = intent(UnitOp("new.service", "install", w), Bind("tcp", None, 9090, w, "unit", "unit", "new.service"))
    assert plan(i, host(held(9090))) == []


def test_enabled_only_binds_at_boot_unless_the_holder_is_disabled() -> None:
    w = ref(0, "write unit")
    base = (UnitOp("new.service", "install", w), Bind("tcp", None, 9090, w, "unit", "unit", "new.service"),
            UnitOp("new.service", "enable", ref(1, "enable new")))
    [f] = plan(intent(*base, UnitOp("node_exporter.service", "stop", ref(2))), host(held(9090)))
    assert f.task is not None and f.task.name == "enable new" and "next boot" in f.message
    assert plan(intent(*base, UnitOp("node_exporter.service", "disable", ref(2))), host(held(9090))) == []


def test_restarted_holder_holds_again() -> None:
    i = _handover(stop=True)
    i.units.append(UnitOp("node_exporter.service", "start", ref(1, "oops")))
    i.units.sort(key=lambda u: (u.task.order, u.op != "stop"))
    assert [f.code for f in plan(i, host(held(9090)))] == ["port-in-use"]


def test_handler_restart_is_the_start() -> None:
    w = ref(0, "write unit")
    h = TaskRef(order=5, play="p", name="restart new", action="x", path="pb.yml:9", handler=True)
    items = (UnitOp("new.service", "install", w), Bind("tcp", None, 9090, w, "unit", "unit", "new.service"),
             UnitOp("new.service", "restart", h))
    [f] = plan(intent(*items), host(held(9090)))
    assert f.task == h
    assert plan(intent(*items, UnitOp("node_exporter.service", "stop", ref(3))), host(held(9090))) == []


def test_container_recreate_and_removal_before_a_new_container() -> None:
    old = Container("docker", "abc", "web", "nginx:1.26", "running", (PortBinding("tcp", "", 8080, 80),))
    c, b = container(0, 8080, name="web", image="nginx:1.27")
    assert plan(intent(c, b), host(containers=(old,))) == []
    gone = ContainerOp("docker", "web", "nginx:1.26", "absent", "", ref(0))
    c2, b2 = container(1, 8080, name="caddy", image="caddy")
    assert plan(intent(gone, c2, b2), host(containers=(old,))) == []
    [f] = plan(intent(c2, b2), host(containers=(old,)))
    assert (f.container, f.task) == ("web", b2.task)


def test_two_units_in_the_play_hand_over_a_port() -> None:
    a_w, b_w = ref(0, "a unit"), ref(1, "b unit")
    base = (Bind("tcp", None, 7000, a_w, "unit", "unit", "a.service"), UnitOp("a.service", "start", ref(2)),
            Bind("tcp", None, 7000, b_w, "unit", "unit", "b.service"), UnitOp("b.service", "start", ref(4)))
    assert [f.code for f in plan(intent(*base), host())] == ["port-twice"]
    assert plan(intent(*base, UnitOp("a.service", "stop", ref(3))), host()) == []


def test_a_unit_that_conflicts_with_the_holder_takes_the_port_over() -> None:
    i = _handover(stop=False)
    i.conflicts["new.service"] = ["node_exporter.service"]
    assert plan(i, host(held(9090))) == []
