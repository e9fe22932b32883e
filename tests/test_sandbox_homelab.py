"""Sandboxes that look like real homelab hosts (issue 10 item 6): several booted at once on a fresh prefix,
a login user whose sudo needs a password with root login off, a shared private network, a host behind a
bastion. Few boots: the race test's two, then one network of three."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from safeapply import sandbox as sb
from safeapply.cli import main

pytestmark = pytest.mark.sandbox


@pytest.fixture
def fresh_prefix_dir(sandbox_factory: Callable[[str], object], monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A state dir with no controller key yet (what a first `sandbox up` on a new prefix sees). It lies under this
    prefix's own dir, so a killed run's overlay mounts are still found by the session's leftovers check."""
    fresh = sb.paths.base_dir() / "fresh"
    shutil.rmtree(fresh, ignore_errors=True)
    monkeypatch.setenv("SAFEAPPLY_SANDBOX_DIR", str(fresh))
    yield fresh
    shutil.rmtree(fresh, ignore_errors=True)


def test_up_two_at_once_on_a_fresh_prefix(fresh_prefix_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = ["race1", "race2"]
    try:
        rc = main(["sandbox", "up", *names])
        err = capsys.readouterr().err
        assert rc == 0, err
        assert main(["sandbox", "list", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)["sandboxes"]
        assert {(s["name"], s["running"]) for s in listed} == {(n, True) for n in names}
        for n in names:
            ssh = sb.SandboxPaths(n).ssh_config
            assert subprocess.run(["ssh", "-F", str(ssh), n, "true"], check=False).returncode == 0
    finally:
        for n in names:
            sb.down(n, fast=True)
    assert not [x for x in sb.leftovers() if any(n in x for n in names)]
