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
