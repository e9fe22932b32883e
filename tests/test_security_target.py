"""Reproducers of the safety audit (issue 11) on the target side, each named after the promise it protects:
a host cannot plant a snapshot for another (6), a stale switch never fires on top of a later run (7), the
snapshot program never follows a symlink an account swapped in (11)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Sandbox

from safeapply.cli import main
from safeapply.snapshot.store import Store

pytestmark = pytest.mark.sandbox

# A tampered host, whatever version of the program it runs: a .pth file its python3 reads at startup.
SKEW = ("import datetime; D = datetime.datetime; datetime.datetime = type('D', (D,), "
        "{'now': classmethod(lambda c, tz=None, D=D, m=datetime: D.now(tz) - m.timedelta(days=2))})")
TAMPERS = {
    "host": "import sys; sys.argv[:] = ['victim' if a == '{name}' else a for a in sys.argv]",
    "roots": "import sys; sys.argv[:] = ['/etc/ssh' if a == '/etc' else a for a in sys.argv]",
    "created": SKEW,
}


@pytest.fixture(scope="module")
def host(sandbox_factory: Callable[[str], Sandbox]) -> Sandbox:
    return sandbox_factory("tgt")


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_a_host_cannot_plant_a_snapshot_for_another(host: Sandbox, tmp_path: Path, tamper: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 11 item 6: the stored id and "latest" came from the header the host sent, so a tampered host
    could store a snapshot of itself as another host's newest one (then restored onto that host); roots and
    creation time were taken on trust as well."""
    assert main(["snapshot", host.name, "-i", str(host.inventory)]) == 0  # honest
    store = Store(tmp_path / "state" / "snapshots")
    honest = store.ids()
    capsys.readouterr()
    site = host.sh("python3 -c 'import site; print(site.getsitepackages()[0])'").strip()
    host.sh(f"mkdir -p {site} && cat > {site}/zz_tampered.pth",
            stdin=TAMPERS[tamper].replace("{name}", host.name).encode() + b"\n")
    try:
        code = main(["snapshot", host.name, "-i", str(host.inventory)])
    finally:
        host.sh(f"rm -f {site}/zz_tampered.pth")
    err = capsys.readouterr().err
    assert code == 15, err
    assert "refusing the snapshot" in err
    assert store.ids() == honest
    assert [s.id for s in store.summaries("victim")] == []


def test_manifests_are_kept_per_host(tmp_path: Path) -> None:
    """Issue 11 item 6: a manifest kept for host a, whatever its header says, is never b's "latest"."""
    import datetime
    import json

    store = Store(tmp_path / "store")
    head = {"format": 1, "host": "b", "roots": ["/etc"],
            "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    raw = json.dumps(head).encode() + b"\n" + json.dumps({"p": "/etc", "t": "d"}).encode() + b"\n"
    sid = store.save({}, raw, "a")
    assert store.ids() == [sid]
    assert [s.id for s in store.summaries("b")] == []
    assert store.latest_blobs("b") == set()
    assert store.load(sid).id == sid


STALE = "stale-run-1"
PLAYBOOK = ("- hosts: all\n  gather_facts: false\n  tasks:\n"
            "    - ansible.builtin.copy: {dest: /etc/ts-after-stale, content: x, mode: '0644'}\n")


@pytest.mark.parametrize("lock", [False, True], ids=["arm", "lock-takeover"])
def test_a_stale_switch_never_fires_on_top_of_a_later_run(host: Sandbox, tmp_path: Path, lock: bool,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 11 item 7: a switch left armed by an earlier run (its controller killed, its release failed) fired
    at its deadline on top of a later run. Arming, and taking over the dead run's lock, now refuse (exit 4,
    host untouched) naming that run and how to release it; once released, the run goes ahead."""
    import json
    import socket
    import subprocess

    from safeapply.deadman import arm, disarm, status

    pb = tmp_path / "pb.yml"
    pb.write_text(PLAYBOOK)
    with host.transport() as t:
        arm(t, STALE, None, 900)  # an earlier run's switch, still armed (no snapshot: firing restores nothing)
    if lock:
        pid = int(subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True).stdout)
        owner = json.dumps({"run_id": STALE, "controller": socket.gethostname(), "pid": pid})
        host.sh("mkdir -p -m 700 /run/safeapply/lock && cat > /run/safeapply/lock/owner.json", stdin=owner.encode())
    try:
        capsys.readouterr()
        code = main(["run", str(pb), "-i", str(host.inventory), "--yes", "--settle", "0"])
        err = capsys.readouterr().err
        assert code == 4, err
        assert STALE in err and f"safeapply deadman {STALE}" in err and "--release" in err, err
        assert host.sh_rc("test -e /etc/ts-after-stale")[0] != 0
        if lock:  # not taken over: still the dead run's
            assert STALE in host.sh("cat /run/safeapply/lock/owner.json")
        assert main(["deadman", STALE, "--release", "--host", host.name, "-i", str(host.inventory)]) == 0
        with host.transport() as t:
            assert not status(t, STALE)["armed"]
        assert main(["run", str(pb), "-i", str(host.inventory), "--yes", "--settle", "0"]) == 0
        assert host.sh_rc("test -e /etc/ts-after-stale")[0] == 0
    finally:
        with host.transport() as t:
            disarm(t, STALE)
        host.sh("rm -rf /etc/ts-after-stale /run/safeapply/lock")
