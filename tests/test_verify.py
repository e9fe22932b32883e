"""verify.py: the pure comparison on constructed scans, and user checks run for real through a transport."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from safeapply.errors import UsageError
from safeapply.probe.model import Container, Owner
from safeapply.scan import HostState, Listener, Unit
from safeapply.transport.local import LocalTransport
from safeapply.verify import (
    Expectation,
    checks_file_for,
    compare,
    load_checks,
    needs_settle,
    run_checks,
    settle_left,
)


def _u(name: str, active: str = "active", sub: str = "running", restarts: int = 0, pid: int = 10,
       since: float = -1.0) -> Unit:
    return Unit(name, "loaded", active, sub, "enabled", main_pid=pid, n_restarts=restarts, since_change_s=since)


def _state(*units: Unit, listeners: tuple[Listener, ...] = ()) -> HostState:
    return HostState("h", units=units, listeners=listeners)


def test_newly_failed_unit_and_old_failure_ignored() -> None:
    before = _state(_u("a.service"), _u("old.service", "failed", "failed"))
    after = _state(_u("a.service", "failed", "failed"), _u("old.service", "failed", "failed"))
    assert [(f.kind, f.subject) for f in compare(before, after, None)] == [("unit-failed", "a.service")]


def test_restart_loop_over_settle_window() -> None:
    before = _state(_u("a.service"))
    after = _state(_u("a.service", restarts=1, pid=20))
    settled = _state(_u("a.service", restarts=2, pid=30))
    assert [f.kind for f in compare(before, after, settled)] == ["restart-loop"]
    assert compare(before, after, after) == []  # stable over the window: fine
    waiting = _state(_u("a.service", "activating", "auto-restart", restarts=1))
    assert [f.kind for f in compare(before, waiting, None)] == ["restart-loop"]


def test_expected_units_ports_containers() -> None:
    state = _state(_u("web.service"), _u("db.service", "inactive", "dead"),
                   listeners=(Listener("tcp", "0.0.0.0", 80),))
    exp = Expectation(units=frozenset({"web.service", "db.service", "gone.service"}),
                      ports=frozenset({("tcp", 80), ("tcp", 9090), ("udp", 80)}),
                      containers=frozenset({"agent"}))
    got = {(f.kind, f.subject) for f in compare(state, state, None, exp)}
    assert got == {("unit-not-active", "db.service"), ("unit-not-active", "gone.service"),
                   ("port-not-listening", "9090/tcp"), ("port-not-listening", "80/udp"),
                   ("container", "agent")}


def test_a_container_that_is_not_running_names_the_holder_of_its_port_and_its_last_words() -> None:
    holder = Listener("tcp", "0.0.0.0", 9090, (Owner(41, "python3", unit="node_exporter.service"),))
    agent = Container("podman", "c1", "agent", "docker.io/prom/agent-lite:latest", "exited", network_mode="host",
                      exit_code=1, exposed=("9090/tcp",), log_tail="starting\nhttpd: bind: Address already in use\n")
    state = HostState("h", listeners=(holder,), containers=(agent,))
    [f] = compare(state, state, None, Expectation(containers=frozenset({"agent", "gone"})))[:1]
    assert f.message == ("container agent is not running (exited, exit code 1); 9090/tcp is held by "
                         "node_exporter.service (python3 PID 41); its last log line: httpd: bind: Address "
                         "already in use")
    assert compare(state, state, None, Expectation(containers=frozenset({"gone"})))[0].message == (
        "container gone does not exist")


def test_needs_settle_only_when_units_moved() -> None:
    before = _state(_u("a.service"))
    assert not needs_settle(before, _state(_u("a.service")), Expectation())
    assert needs_settle(before, _state(_u("a.service", pid=11)), Expectation())
    assert needs_settle(before, before, Expectation(units=frozenset({"a.service"})))


def test_new_inactive_units_and_our_own_do_not_settle() -> None:
    before = _state(_u("a.service"))
    deadman = _u("safeapply-deadman-r1.service", "activating", "start")
    assert not needs_settle(before, _state(_u("a.service"), deadman), Expectation())
    assert not needs_settle(before, _state(_u("a.service"), _u("new.service", "inactive", "dead")), Expectation())
    assert needs_settle(before, _state(_u("a.service"), _u("new.service", "activating", "auto-restart")),
                        Expectation())


def test_load_checks(tmp_path: Path) -> None:
    pb = tmp_path / "site.yml"
    assert checks_file_for(pb) == tmp_path / "site.verify.yml"
    assert load_checks(checks_file_for(pb)) == []
    checks_file_for(pb).write_text("checks:\n  - tcp: 22\n  - http: http://x/\n    status: 204\n"
                                   "  - command: 'true'\n  - unit: ssh.service\n")
    kinds = [(c["kind"], c.get("port"), c.get("status")) for c in load_checks(checks_file_for(pb))]
    assert kinds == [("tcp", 22, None), ("http", None, 204), ("command", None, None), ("unit", None, None)]
    for bad in ("checks: 3\n", "checks:\n  - tcp: x\n", "checks:\n  - foo: 1\n", "checks: [\n"):
        checks_file_for(pb).write_text(bad)
        with pytest.raises(UsageError):
            load_checks(checks_file_for(pb))


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 503)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def web() -> Iterator[int]:
    srv = HTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield int(srv.server_address[1])
    finally:
        srv.shutdown()
        srv.server_close()


def test_user_checks_run_on_the_target(tmp_path: Path, web: int) -> None:
    f = tmp_path / "pb.verify.yml"
    f.write_text(f"""checks:
  - tcp: {web}
  - tcp: 1
  - http: http://127.0.0.1:{web}/ok
  - http: http://127.0.0.1:{web}/bad
  - command: "test -d {tmp_path}"
  - command: "echo nope >&2; exit 3"
""")
    findings = run_checks(LocalTransport("here"), load_checks(f))
    got = {(x.subject, x.message.split(":")[0]) for x in findings}
    assert got == {("tcp 1", "ConnectionRefusedError"), (f"http http://127.0.0.1:{web}/bad",
                   "HTTP 503, expected 200"), ("command echo nope >&2; exit 3", "exited 3")}


def test_the_settle_window_counts_from_each_touched_units_last_change() -> None:
    """Issue 15 item 1: a unit restarted by a handler 2 s before verify's first scan has already been up 2 s of a
    3 s window: 1 s is left. The youngest touched unit decides; an unknown age or a container, the whole window."""
    before = _state(_u("a.service"), _u("old.service", since=500.0))
    restarted = _u("a.service", pid=11, since=2.0)
    assert settle_left(before, _state(restarted, _u("old.service", since=600.0)), Expectation(), 3.0) == 1.0
    assert settle_left(before, _state(restarted, _u("new.service", since=0.5)), Expectation(), 3.0) == 2.5
    assert settle_left(before, _state(_u("a.service", pid=11, since=9.0)), Expectation(), 3.0) == 0.0
    assert settle_left(before, _state(_u("a.service", pid=11)), Expectation(), 3.0) == 3.0  # age unknown
    expect = Expectation(units=frozenset({"old.service"}))
    assert settle_left(before, _state(_u("a.service"), _u("old.service", since=0.2)), expect, 3.0) == 2.8
    assert settle_left(before, _state(restarted), Expectation(containers=frozenset({"web"})), 3.0) == 3.0
