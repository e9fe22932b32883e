"""Every container path against a real engine: podman inside a container sandbox (`sandbox up --containers`),
local images only (sandbox/containers.py), no network. One sandbox for the module; each test puts it back."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Sandbox

from safeapply import sandbox as sb
from safeapply.cli import main
from safeapply.sandbox.containers import START_DOCKER
from safeapply.scan import scan_host

pytestmark = pytest.mark.sandbox

AGENT_UNIT = (Path(__file__).parents[1] / "playbooks/demo/node_exporter.service").read_bytes()  # as the demo's
ETC = "find /etc -xdev -type f -exec sha256sum {} + | sort; find /etc -xdev ! -type f | sort"


@pytest.fixture(scope="module")
def ct(sandbox_factory: Callable[..., Sandbox]) -> Sandbox:
    return sandbox_factory("ct1", sb.SandboxOptions(containers=True))


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def agent_unit(ct: Sandbox) -> Iterator[None]:
    """The incident's starting point: a systemd unit holds 9090."""
    ct.sh("cat > /etc/systemd/system/node_exporter.service && "
          "systemctl daemon-reload && systemctl enable --now node_exporter.service && "
          "for i in $(seq 100); do ss -Hltn 'sport = :9090' | grep -q . && break; sleep 0.1; done", stdin=AGENT_UNIT)
    yield
    ct.sh("systemctl disable --now node_exporter.service; rm -f /etc/systemd/system/node_exporter.service; "
          "systemctl daemon-reload")


@pytest.fixture(autouse=True)
def _no_containers_left(ct: Sandbox) -> Iterator[None]:
    yield
    ct.sh("podman rm -af -t 0 >/dev/null; if systemctl -q is-active docker; then docker ps -aq | xargs -r docker rm -f "
          ">/dev/null; systemctl stop docker.socket docker.service; fi")


def _pb(tmp_path: Path, name: str, tasks: str) -> Path:
    p = tmp_path / name
    p.write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n{tasks}")
    return p


def _run(pb: Path, host: Sandbox) -> int:
    return main(["run", str(pb), "-i", str(host.inventory), "--yes", "--settle", "1"])


def _last(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["show", "last", "--json"]) == 0
    return dict(json.loads(capsys.readouterr().out))


def _containers(host: Sandbox) -> dict[str, tuple[str, str]]:
    """name -> (state, image ID) as podman itself says."""
    out = host.sh("for c in $(podman ps -aq); do podman inspect --format '{{.Name}} {{.State.Status}} {{.Image}}' $c; "
                  "done")
    return {n: (s, i[:12]) for n, s, i in (line.split() for line in out.splitlines() if line.strip())}


def test_scan_names_the_container_behind_a_published_port(ct: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    ct.sh("podman run -d --name web -p 8081:8080 docker.io/library/httpd-lite:1")
    with ct.transport() as t:
        state = scan_host(t)
    web = next(c for c in state.containers if c.name == "web")
    assert web.running and web.engine == "podman" and web.image == "docker.io/library/httpd-lite:1"
    assert [(p.host_port, p.container_port, p.proto) for p in web.ports] == [(8081, 8080, "tcp")]
    listener = next(x for x in state.listeners if x.port == 8081)
    assert state.container_of(listener) == web  # conmon holds the port for the container, not ssh.service
    capsys.readouterr()
    assert main(["scan", "-i", str(ct.inventory)]) == 0
    out = capsys.readouterr().out
    assert "container web" in next(line for line in out.splitlines() if " 8081 " in line)


def test_seed_incident_container_that_cannot_bind_is_rolled_back(
        ct: Sandbox, agent_unit: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The port is only in the image (host network): the plan cannot see it; verification must."""
    etc = ct.sh(ETC)
    unit_pid = ct.sh("systemctl show -P MainPID node_exporter.service").strip()
    pb = _pb(tmp_path, "agent.yml", """    - name: Run the agent as a container
      containers.podman.podman_container:
        name: agent
        image: docker.io/prom/agent-lite:latest
        network: host
        state: started
""")
    assert _run(pb, ct) == 20
    out = capsys.readouterr()
    rec = _last(capsys)
    findings = rec["verify"]["ct1"]["findings"]  # type: ignore[index]
    msg = next(f["message"] for f in findings if f["kind"] == "container" and f["subject"] == "agent")
    assert "9090/tcp" in msg and "node_exporter.service" in msg and f"PID {unit_pid}" in msg, msg
    assert "Address already in use" in msg, msg  # the container's own last words
    assert "node_exporter.service" in out.out + out.err
    assert rec["rollback"]["ct1"]["outcome"] == "restored"  # type: ignore[index]
    assert "agent" not in _containers(ct)  # the container the run created is gone
    assert ct.sh("systemctl is-active node_exporter.service").strip() == "active"
    assert ct.sh("systemctl show -P MainPID node_exporter.service").strip() == unit_pid  # left alone
    assert ct.sh(ETC) == etc


def test_podman_container_applied_and_verified(ct: Sandbox, tmp_path: Path) -> None:
    pb = _pb(tmp_path, "web.yml", """    - name: web container
      containers.podman.podman_container:
        name: web
        image: docker.io/library/httpd-lite:1
        ports: ["8082:8080"]
        state: started
""")
    (tmp_path / "web.verify.yml").write_text("checks:\n  - http: http://127.0.0.1:8082/\n")
    assert _run(pb, ct) == 0
    assert _containers(ct)["web"][0] == "running"


def test_failed_run_puts_back_stopped_and_replaced_containers_and_etc_containers(
        ct: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A container the run stopped is started again; one it replaced (same name, new image) is put back;
    the engine's own files under /etc/containers are restored like any other file."""
    ct.sh("podman run -d --name keep localhost/busybox:latest sleep 100000 && "
          "podman run -d --name web -p 8083:8080 docker.io/library/httpd-lite:1")
    before = _containers(ct)
    etc = ct.sh(ETC)
    pb = _pb(tmp_path, "bad.yml", """    - name: stop keep
      containers.podman.podman_container: {name: keep, state: stopped}
    - name: replace web with the new image
      containers.podman.podman_container:
        name: web
        image: docker.io/library/httpd-lite:2
        ports: ["8083:8080"]
        state: started
    - name: engine config
      ansible.builtin.copy:
        dest: /etc/containers/registries.conf.d/50-mirror.conf
        content: "[[registry]]\\nlocation = \\"mirror.invalid\\"\\n"
    - name: engine config edited
      ansible.builtin.lineinfile: {path: /etc/containers/containers.conf.d/sandbox.conf, line: "# edited"}
    - name: fail
      ansible.builtin.fail: {msg: deliberate failure}
""")
    code = _run(pb, ct)
    rec = _last(capsys)
    assert code == 20, rec.get("rollback")
    assert rec["rollback"]["ct1"]["outcome"] == "restored", rec["rollback"]  # type: ignore[index]
    after = _containers(ct)
    assert after["keep"][0] == "running"
    assert after["web"] == before["web"] == ("running", before["web"][1])  # the old image again, running
    assert ct.sh(ETC) == etc
    assert "hello" in ct.sh(
        "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8083/').read())\"")


def test_docker_scan_and_the_incident_rolled_back(
        ct: Sandbox, agent_unit: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same with docker (Debian's docker.io, started on demand) and community.docker.docker_container."""
    ct.sh(f"{START_DOCKER} && docker run -d --name dweb -p 8084:8080 docker.io/library/httpd-lite:1")
    with ct.transport() as t:
        state = scan_host(t)
    dweb = next(c for c in state.containers if c.name == "dweb")
    assert (dweb.engine, dweb.running, {(p.host_port, p.container_port) for p in dweb.ports}) == (
        "docker", True, {(8084, 8080)})  # on 0.0.0.0 and ::
    assert state.container_of(next(x for x in state.listeners if x.port == 8084)) == dweb  # docker-proxy's port
    etc = ct.sh(ETC)
    pb = _pb(tmp_path, "dagent.yml", """    - name: Run the agent as a docker container
      community.docker.docker_container:
        name: dagent
        image: docker.io/prom/agent-lite:latest
        network_mode: host
        state: started
""")
    assert _run(pb, ct) == 20
    rec = _last(capsys)
    msg = next(f["message"] for f in rec["verify"]["ct1"]["findings"]  # type: ignore[index]
               if f["subject"] == "dagent")
    assert "9090/tcp is held by node_exporter.service" in msg and "Address already in use" in msg, msg
    assert rec["rollback"]["ct1"]["outcome"] == "restored", rec["rollback"]  # type: ignore[index]
    assert ct.sh("docker ps -a --format '{{.Names}} {{.State}}'").split() == ["dweb", "running"]
    assert ct.sh("systemctl is-active node_exporter.service").strip() == "active"
    assert ct.sh(ETC) == etc


def test_rollback_leaves_alone_the_containers_somebody_else_changed_during_the_run(
        ct: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 11 item 13: while a failing run waits on the host, somebody else (another run, a user, a timer)
    starts a container and stops another. Rollback removes the run's own containers — the one its plan names
    and an unnamed one whose ID its `podman run -d` task printed — and leaves theirs as they are, reporting them."""
    ct.sh("podman run -d --name bystander localhost/busybox:latest sleep 100000")
    pb = _pb(tmp_path, "ours.yml", """    - name: our container
      containers.podman.podman_container:
        name: mine
        image: localhost/busybox:latest
        command: sleep 100000
        state: started
    - name: an unnamed container of ours
      ansible.builtin.command: podman run -d localhost/busybox:latest sleep 100001
    - name: meanwhile somebody else changes containers (the test does, over SSH)
      ansible.builtin.wait_for: {path: /run/other-actor-done, timeout: 600}
    - name: fail
      ansible.builtin.fail: {msg: deliberate failure}
""")
    done, said = threading.Event(), []

    def other_actor() -> None:  # once the run's own container exists (so after its pre-run scan)
        while not done.is_set() and ct.sh_rc("podman container exists mine")[0] != 0:
            done.wait(0.3)
        if not done.is_set():
            said.append(ct.sh_rc("podman run -d --name theirs localhost/busybox:latest sleep 100002 && "
                                 "podman stop -t 0 bystander && touch /run/other-actor-done"))

    actor = threading.Thread(target=other_actor)
    actor.start()
    try:
        code = _run(pb, ct)
    finally:
        done.set()
        actor.join()
        ct.sh("rm -f /run/other-actor-done")
    assert said and said[0][0] == 0, said
    shown = capsys.readouterr().out
    rec = _last(capsys)
    assert code == 20, rec.get("rollback")
    rb = rec["rollback"]["ct1"]  # type: ignore[index]
    assert rb["outcome"] == "restored", rb
    after = _containers(ct)  # the run's two are gone; theirs is as they left it
    assert sorted(after) == ["bystander", "theirs"], after
    assert (after["theirs"][0], after["bystander"][0]) == ("running", "exited"), after
    assert sorted((c["name"], c["why"].split(";")[0]) for c in rb["containers_left"]) == [
        ("bystander", "stopped during the run"), ("theirs", "created during the run")], rb
    assert "left as it is: podman container theirs (created during the run" in shown, shown
