"""`deadman RUN` / `show RUN` read a run's hosts in the run's directory with its ansible.cfg (`run_config.asking`):
a file changed or gone since the run is warned about, not refused (they have no --force; see run_config)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from safeapply.records import RunRecord, file_sha256
from safeapply.run_config import asking


def _rec(project: Path) -> RunRecord:
    cfg = project / "ansible.cfg"
    return RunRecord(id="r1", started="2026-01-01T00:00:00+00:00", user="u", controller="c", playbook="p.yml",
                     playbook_sha256="0", sections={"provenance": {
                         "cwd": str(project), "ansible_config": str(cfg), "ansible_config_sha256": file_sha256(cfg)}})


@pytest.mark.parametrize("change", ["none", "edited", "removed"])
def test_asking_pins_the_runs_directory_and_config_and_warns_when_they_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    project, decoy = tmp_path / "project", tmp_path / "decoy"
    project.mkdir()
    decoy.mkdir()
    (project / "ansible.cfg").write_text("[defaults]\nremote_user = deploy\n")
    (decoy / "ansible.cfg").write_text("[defaults]\nremote_user = root\n")
    rec = _rec(project)
    if change == "edited":
        (project / "ansible.cfg").write_text("[defaults]\nremote_user = other\n")
    elif change == "removed":
        (project / "ansible.cfg").unlink()
    monkeypatch.chdir(decoy)
    monkeypatch.setenv("ANSIBLE_CONFIG", str(decoy / "ansible.cfg"))
    warned: list[str] = []
    with asking(rec, warned.append):
        assert Path.cwd() == project
        assert os.environ.get("ANSIBLE_CONFIG") == (None if change == "removed" else str(project / "ansible.cfg"))
    assert Path.cwd() == decoy and os.environ["ANSIBLE_CONFIG"] == str(decoy / "ansible.cfg")
    want = {"none": [], "edited": ["changed since the run"], "removed": ["is gone"]}[change]
    assert len(warned) == len(want) and all(w in line for w, line in zip(want, warned, strict=True))
    assert all(line.startswith(f"{project / 'ansible.cfg'}, the ansible.cfg run r1 read") for line in warned)
