"""`safeapply rollback RUN` never restores blindly (issue 11 item 8): not onto another machine that the
inventory now calls by the run's host name, not an old snapshot or over later runs without being told so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import Sandbox

import safeapply
from safeapply.cli import main
from safeapply.records import RunStore

pytestmark = pytest.mark.sandbox


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(scope="module")
def host(sandbox_factory: Callable[[str], Sandbox]) -> Sandbox:
    return sandbox_factory("rbr1")


def _pb(tmp_path: Path, dest: str) -> Path:
    p = tmp_path / f"pb-{Path(dest).name}.yml"
    p.write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n    - name: w\n      ansible.builtin.copy: "
                 f"{{dest: {dest}, content: x, mode: '0644'}}\n")
    return p


def _run(pb: Path, inventory: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["run", str(pb), "-i", str(inventory), "--yes", "--settle", "0"]) == 0
    capsys.readouterr()
    assert main(["show", "last", "--json"]) == 0
    return str(json.loads(capsys.readouterr().out)["id"])


def _as(name: str, other: Sandbox) -> dict[str, object]:
    """An inventory that calls `other`'s machine by `name`."""
    doc = yaml.safe_load(other.inventory.read_text())
    return {"all": {"hosts": {name: doc["all"]["hosts"][other.name]}}}


def test_refuses_another_machine_under_the_same_name(host: Sandbox, sandbox_factory: Callable[[str], Sandbox],
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = sandbox_factory("rbr2")
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump(_as(host.name, host)))
    run_id = _run(_pb(tmp_path, "/etc/hr-rbr-a"), inv, capsys)
    inv.write_text(yaml.safe_dump(_as(host.name, other)))  # same name, now another machine
    before = other.sh("ls -la /etc")
    assert main(["rollback", run_id, "--yes", "--force"]) == 2
    assert "is not the machine run" in capsys.readouterr().err
    assert other.sh("ls -la /etc") == before
    assert host.sh_rc("test -e /etc/hr-rbr-a")[0] == 0  # and the real host was not touched either
    host.sh("rm -f /etc/hr-rbr-a")


def test_later_runs_and_old_snapshots_need_force(host: Sandbox, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    first = _run(_pb(tmp_path, "/etc/hr-rbr-1"), host.inventory, capsys)
    _run(_pb(tmp_path, "/etc/hr-rbr-2"), host.inventory, capsys)
    assert main(["rollback", first, "--yes"]) == 2  # no TTY: nobody can be asked
    assert "later runs changed its hosts" in capsys.readouterr().err
    assert host.sh_rc("test -e /etc/hr-rbr-1 && test -e /etc/hr-rbr-2")[0] == 0
    last = _run(_pb(tmp_path, "/etc/hr-rbr-3"), host.inventory, capsys)
    assert main(["rollback", last, "--yes", "--max-age", "0"]) == 2
    assert "old (more than --max-age" in capsys.readouterr().err
    assert main(["rollback", first, "--yes", "--force"]) == 0
    assert host.sh_rc("test -e /etc/hr-rbr-1 || test -e /etc/hr-rbr-2 || test -e /etc/hr-rbr-3")[0] != 0
    left = host.sh("systemctl list-timers --all --no-legend | grep -c safeapply-deadman || true")
    assert left.strip() == "0"  # the switch armed around the rollback was disarmed


def test_rollback_run_leaves_alone_what_a_timer_started_since(host: Sandbox, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 11 item 13: `rollback RUN` stopped every unit active now that was not before the run — here the
    service of a timer that was there before (certbot, apt-daily-upgrade), started after the run. As in a run's
    own rollback, only what the run (and later runs) name is the run's."""
    unit = "[Service]\\nExecStart=/bin/sleep infinity\\n"
    host.sh(f"printf '{unit}' > /etc/systemd/system/rbr-theirs.service && printf '[Timer]\\nOnActiveSec=1d\\n' "
            "> /etc/systemd/system/rbr-theirs.timer && systemctl daemon-reload && systemctl start rbr-theirs.timer")
    pb = tmp_path / "pb-unit.yml"
    pb.write_text(f"""- hosts: all
  gather_facts: false
  tasks:
    - name: write my unit
      ansible.builtin.copy: {{dest: /etc/systemd/system/rbr-mine.service, content: "{unit}", mode: "0644"}}
    - name: start my unit
      ansible.builtin.systemd: {{name: rbr-mine.service, state: started, daemon_reload: true}}
""")
    try:
        run_id = _run(pb, host.inventory, capsys)
        host.sh("systemctl start rbr-theirs.service")  # as its timer would, after the run
        assert main(["rollback", run_id, "--yes"]) == 0, capsys.readouterr()
        assert host.sh_rc("systemctl is-active --quiet rbr-mine.service")[0] != 0
        assert host.sh_rc("test -e /etc/systemd/system/rbr-mine.service")[0] != 0
        assert host.sh("systemctl is-active rbr-theirs.service").strip() == "active"
    finally:
        host.sh("systemctl stop rbr-theirs.timer rbr-theirs.service rbr-mine.service 2>/dev/null; rm -f "
                "/etc/systemd/system/rbr-theirs.* /etc/systemd/system/rbr-mine.service; systemctl daemon-reload")


def test_deadman_run_reads_the_runs_hosts_as_the_run_did_from_any_directory(
        host: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`deadman RUN` (status, --release) from a directory whose ansible.cfg reads no YAML inventory: the run's
    directory and ansible.cfg are used, as `rollback RUN` does, not this one's."""
    project, decoy = tmp_path / "project", tmp_path / "decoy"
    project.mkdir()
    decoy.mkdir()
    monkeypatch.chdir(project)
    run_id = _run(_pb(tmp_path, "/etc/hr-rbr-dm"), host.inventory, capsys)
    (decoy / "ansible.cfg").write_text("[inventory]\nenable_plugins = host_list\n")
    store = RunStore()
    rec = store.get(run_id)
    rec.sections["snapshots"][host.name]["deadman"]["outcome"] = "armed"  # as a killed controller leaves it
    store.save(rec)
    code = Path(safeapply.__file__).parent.parent  # the safeapply under test
    env = {**os.environ, "SAFEAPPLY_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(code)}
    env.pop("ANSIBLE_CONFIG", None)
    for argv, outcome in ((["--json"], "disarmed"), (["--release", "--json"], "released")):
        proc = subprocess.run([str(Path(sys.executable).parent / "safeapply"), "deadman", run_id, *argv], cwd=decoy,
                              env=env, capture_output=True, text=True, check=False, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["hosts"][host.name]["outcome"] == outcome, proc.stdout
    host.sh("rm -f /etc/hr-rbr-dm")
