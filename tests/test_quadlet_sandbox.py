"""A quadlet `.container` file applied, verified and rolled back for real: podman 5's systemd generator inside a
container sandbox (Debian trixie, `sandbox up --containers`), local images only, no network. One sandbox for the
module; each test puts it back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Sandbox
from test_containers_sandbox import AGENT_UNIT, ETC, _containers, _last, _pb, _run

from safeapply import sandbox as sb
from safeapply.scan import scan_host

pytestmark = pytest.mark.sandbox

QUADLETS = "/etc/containers/systemd"


@pytest.fixture(scope="module")
def qt(sandbox_factory: Callable[..., Sandbox]) -> Sandbox:
    return sandbox_factory("qt1", sb.SandboxOptions(containers=True))


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(autouse=True)
def _no_quadlets_left(qt: Sandbox) -> Iterator[None]:
    yield
    qt.sh(f"for f in {QUADLETS}/*.container; do [ -e \"$f\" ] || continue; n=$(basename \"$f\" .container); "
          "systemctl stop \"$n.service\"; rm -f \"$f\"; done; systemctl daemon-reload; systemctl reset-failed; "
          "podman rm -af -t 0 >/dev/null; "
          "systemctl disable --now node_exporter.service 2>/dev/null; rm -f /etc/systemd/system/node_exporter.service; "
          "systemctl daemon-reload")


def _quadlet_pb(tmp_path: Path, name: str, container: str) -> Path:
    """Write NAME.container, let the generator make NAME.service, start it."""
    content = "\\n".join(f"{line}" for line in ["[Container]", *container.splitlines(), ""])
    return _pb(tmp_path, f"{name}.yml", f"""    - name: quadlet {name}
      ansible.builtin.copy:
        dest: {QUADLETS}/{name}.container
        content: "{content}"
        mode: "0644"
    - name: let the generator see it
      ansible.builtin.systemd: {{daemon_reload: true}}
    - name: start {name}
      ansible.builtin.systemd: {{name: {name}.service, state: started}}
""")


def _hold_9090(host: Sandbox) -> str:
    """The incident's starting point: a systemd unit holds 9090. Returns its main PID."""
    host.sh("cat > /etc/systemd/system/node_exporter.service && "
            "systemctl daemon-reload && systemctl enable --now node_exporter.service && "
            "for i in $(seq 100); do ss -Hltn 'sport = :9090' | grep -q . && break; sleep 0.1; done",
            stdin=AGENT_UNIT)
    return host.sh("systemctl show -P MainPID node_exporter.service").strip()


def test_quadlet_applied_and_verified(qt: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pb = _quadlet_pb(tmp_path, "hello", "Image=docker.io/library/httpd-lite:1\nPublishPort=8085:8080\n"
                                        "Exec=httpd -f -p 8080 -h /www")
    (tmp_path / "hello.verify.yml").write_text("checks:\n  - http: http://127.0.0.1:8085/\n")
    assert _run(pb, qt) == 0
    rec = _last(capsys)
    expect = rec["plan"]["expect"]["qt1"]  # type: ignore[index]
    # the plan reads the quadlet: its PublishPort, the generated service and the container it names
    assert ["tcp", 8085] in expect["ports"] and "hello.service" in expect["units"], expect
    assert "systemd-hello" in expect["containers"], expect
    assert qt.sh("systemctl is-active hello.service").strip() == "active"
    assert _containers(qt)["systemd-hello"][0] == "running"
    with qt.transport() as t:
        state = scan_host(t)
    listener = next(x for x in state.listeners if x.port == 8085)
    owner = state.container_of(listener)
    assert owner is not None and owner.name == "systemd-hello", (listener, owner)  # not ssh.service nor the unit
    assert [q.unit for q in state.quadlets] == ["hello.service"]


def test_quadlet_publishing_a_held_port_is_blocked_by_the_plan(
        qt: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The plan-visible variant: the quadlet's PublishPort= collides with the unit; nothing is changed."""
    _hold_9090(qt)
    etc = qt.sh(ETC)
    pb = _quadlet_pb(tmp_path, "agent", "Image=docker.io/library/httpd-lite:1\nPublishPort=9090:8080")
    assert _run(pb, qt) == 17
    err = capsys.readouterr().err
    assert "9090" in err and "node_exporter.service" in err, err
    assert qt.sh(ETC) == etc


def test_quadlet_that_cannot_bind_is_rolled_back(
        qt: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The seed incident through quadlet: the port is only in the image (host network), so the plan cannot see
    it; verification must, and rollback removes the quadlet file, stops its service and removes the container."""
    unit_pid = _hold_9090(qt)
    etc = qt.sh(ETC)
    pb = _quadlet_pb(tmp_path, "agent", "Image=docker.io/prom/agent-lite:latest\nNetwork=host")
    assert _run(pb, qt) == 20
    rec = _last(capsys)
    findings = rec["verify"]["qt1"]["findings"]  # type: ignore[index]
    assert any(f["subject"] == "agent.service" for f in findings), findings  # its service failed
    # quadlet's --rm removed the container; the finding still names who holds the port its image wanted
    msg = next(f["message"] for f in findings if f["kind"] == "container" and f["subject"] == "systemd-agent")
    assert "--rm" in msg and "9090/tcp is held by node_exporter.service" in msg and f"PID {unit_pid}" in msg, msg
    assert rec["rollback"]["qt1"]["outcome"] == "restored", rec["rollback"]  # type: ignore[index]
    assert qt.sh(f"ls {QUADLETS}/*.container 2>/dev/null || true").split() == []  # the quadlet file is gone
    assert qt.sh("systemctl show -P LoadState agent.service").strip() == "not-found"
    assert qt.sh("systemctl show -P ActiveState agent.service").strip() != "active"
    assert "systemd-agent" not in _containers(qt)
    assert qt.sh("systemctl is-active node_exporter.service").strip() == "active"
    assert qt.sh("systemctl show -P MainPID node_exporter.service").strip() == unit_pid
    assert qt.sh(ETC) == etc
