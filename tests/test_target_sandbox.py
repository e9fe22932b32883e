"""The on-host package over real SSH: installed once per version (for root under /var/lib/safeapply/target,
for a login without sudo under its ~/.cache), then only called; a host with a damaged copy gets it again."""

from __future__ import annotations

import pytest

from safeapply import remote
from safeapply.scan import scan_host
from safeapply.snapshot import Store, take
from safeapply.target import layout

pytestmark = pytest.mark.sandbox


def _installs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    sent: list[str] = []
    real = remote.install

    def counting(t, *, sudo=True):  # type: ignore[no-untyped-def]
        sent.append(t.name)
        return real(t, sudo=sudo)

    monkeypatch.setattr(remote, "install", counting)
    return sent


def test_installed_once_per_version_for_root(host_a, tmp_path, monkeypatch) -> None:
    version = remote.bundle().version
    host_a.sh(f"rm -f {layout.INSTALL_DIR}/{version}.pyz")
    sent = _installs(monkeypatch)
    with host_a.transport(user="deploy") as t:  # through sudo -n
        scan_host(t)
        scan_host(t)
        info = take(t, ["/etc/ssh"], Store(tmp_path / "store"))
    assert sent == ["a"]
    assert host_a.sh(f"stat -c '%a %U' {layout.INSTALL_DIR}/{version}.pyz").split() == ["644", "root"]
    assert host_a.sh(f"ls -a {layout.INSTALL_DIR} | grep -c '^{layout.TMP_PREFIX}' || true").strip() == "0"
    launcher = host_a.sh(f"cat {layout.BASE}/{layout.RESTORE_PROGRAM}")
    assert f"{layout.INSTALL_DIR}/{version}.pyz" in launcher and info.id
    host_a.sh(f"echo damaged > {layout.INSTALL_DIR}/{version}.pyz")  # damaged: removed and sent again
    with host_a.transport() as t:
        scan_host(t)
    assert sent == ["a", "a"]
    assert host_a.sh(f"unzip -l {layout.INSTALL_DIR}/{version}.pyz 2>&1 || python3 -m zipfile -l "
                     f"{layout.INSTALL_DIR}/{version}.pyz").count("safeapply/target/") > 10


def test_a_login_without_sudo_gets_its_own_copy(host_a, monkeypatch) -> None:
    version = remote.bundle().version
    host_a.sh("rm -rf ~nosudo/.cache/safeapply")
    sent = _installs(monkeypatch)
    with host_a.transport(user="nosudo") as t:
        state = scan_host(t)
        scan_host(t)
    assert sent == ["a"] and state.units
    assert host_a.sh("ls ~nosudo/.cache/safeapply/target/").split() == [f"{version}.pyz"]
    assert host_a.sh("stat -c %U ~nosudo/.cache/safeapply/target/" + version + ".pyz").strip() == "nosudo"
