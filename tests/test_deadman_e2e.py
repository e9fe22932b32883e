"""End to end: `safeapply run` with the dead-man's switch on real sandbox hosts. Each lockout — (a) sshd
moved / login user forbidden, (b) firewall drops TCP/22, (c) controller SIGKILLed mid-apply — ends with
the host restored by itself, its original /etc, exit 20 and a run record that says so; a good run
disarms and nothing restores afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from safeapply import deadman
from safeapply.cli import main
from safeapply.deadman.confirm import listing_differences
from safeapply.inventory import resolve_hosts
from safeapply.records import RunStore
from safeapply.snapshot import listing

pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).parent.parent
LOCKOUT = ROOT / "playbooks" / "lockout"
DEADLINE = "20"


def _argv(sb, playbook: str) -> list[str]:
    pb = str(LOCKOUT / playbook)
    return [str(Path(sys.executable).parent / "safeapply"), "run", pb, "-i", str(sb.inventory), "--yes",
            "--deadman-deadline", DEADLINE]


def _env(state: Path) -> dict[str, str]:
    return {**os.environ, "SAFEAPPLY_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}


def _before(sb) -> dict[str, dict[str, object]]:
    with sb.transport() as t:
        return listing(t)


def _run(sb, playbook: str, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_argv(sb, playbook), env=_env(state), capture_output=True, text=True, check=False,
                          timeout=600)


def _assert_story(sb, state: Path, before: dict[str, dict[str, object]], monkeypatch, capsys) -> None:
    """Host back on port 22 with its pre-run /etc; the record says it restored itself; show tells it."""
    assert sb.sh("echo back").strip() == "back"
    with sb.transport() as t:
        assert listing_differences(before, listing(t)) == []
    rec = RunStore(state / "runs.sqlite").get("last")
    assert rec.exit_code == 20 and rec.status == "rolled-back", rec.to_dict()
    dm = rec.sections["snapshots"][sb.name]["deadman"]
    assert dm["outcome"] == "restored", dm
    assert dm["fired"]["ok"] and dm["fired"]["run_id"] == rec.id
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(state))
    assert main(["show", rec.id, "--json"]) == 0
    assert '"deadman"' in capsys.readouterr().out
    assert main(["deadman", rec.id]) == 20
    assert "restored itself" in capsys.readouterr().out


@pytest.mark.parametrize("playbook", ["sshd-port.yml", "sshd-allowusers.yml"])
def test_sshd_lockout_restores_itself(sandbox_factory, tmp_path: Path, monkeypatch, capsys, playbook) -> None:
    sb = sandbox_factory("e2e-" + playbook.split(".")[0][5:])
    before = _before(sb)
    proc = _run(sb, playbook, tmp_path)
    assert proc.returncode == 20, proc.stdout + proc.stderr
    assert "restores itself at" in proc.stdout + proc.stderr
    _assert_story(sb, tmp_path, before, monkeypatch, capsys)


def test_firewall_lockout_restores_itself(sandbox_factory, tmp_path: Path, monkeypatch, capsys) -> None:
    sb = sandbox_factory("e2e-nft")
    rc, err = sb.sh_rc("nft list ruleset")
    assert rc == 0, f"nft must work inside the sandbox (CAP_NET_ADMIN in supervise.sh): {err.strip()}"
    before = _before(sb)
    proc = _run(sb, "nft-drop-ssh.yml", tmp_path)
    assert proc.returncode == 20, proc.stdout + proc.stderr
    _assert_story(sb, tmp_path, before, monkeypatch, capsys)
    assert "dport 22" not in sb.sh("nft list ruleset")


def test_controller_sigkilled_mid_apply(sandbox_factory, tmp_path: Path, monkeypatch, capsys) -> None:
    sb = sandbox_factory("e2e-kill")
    before = _before(sb)
    proc = subprocess.Popen(_argv(sb, "slow.yml"), env=_env(tmp_path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while sb.sh_rc("test -e /etc/safeapply-slow-marker")[0] != 0:
            assert proc.poll() is None, "the run ended before the slow task"
            time.sleep(0.5)
    finally:  # the controller machine "dies": it and every process it started, each by its PID
        family = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        for pid in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
    rec = RunStore(tmp_path / "runs.sqlite").get("last")
    assert rec.finished is None and rec.exit_code is None  # the controller never got to finish it
    armed = deadman.Armed.from_dict(rec.sections["snapshots"][sb.name]["deadman"]["armed"])
    host = resolve_hosts([str(sb.inventory)], sb.name)[0]
    out = deadman.wait_for_restore(host, armed, before_listing=before, poll_s=1)
    assert out.status == "restored", out.to_dict()
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path))
    assert main(["deadman", rec.id]) == 20  # asks the host, records the end of the story
    capsys.readouterr()
    _assert_story(sb, tmp_path, before, monkeypatch, capsys)
    assert "killed" not in sb.sh("cat /etc/motd")


def test_good_run_disarms_and_nothing_restores(sandbox_factory, tmp_path: Path) -> None:
    sb = sandbox_factory("e2e-good")
    proc = _run(sb, "good.yml", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = RunStore(tmp_path / "runs.sqlite").get("last")
    dm = rec.sections["snapshots"][sb.name]["deadman"]
    assert dm["outcome"] == "disarmed" and rec.status == "applied"
    assert "safeapply-deadman" not in sb.sh("systemctl list-timers --all --no-pager")
    deadline = deadman.Armed.from_dict(dm["armed"]).deadline_at.timestamp()
    while time.time() < deadline + 5:  # past the deadline: nothing may restore
        time.sleep(1)
    assert sb.sh("cat /etc/safeapply-good-marker").strip() == "kept"
    with sb.transport() as t:
        assert deadman.fired_record(t, rec.id) is None
