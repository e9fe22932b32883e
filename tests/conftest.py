"""Test harness: real sandbox hosts (systemd-nspawn, sshd, systemd as PID 1), booted once per session and
always torn down — also on failure and Ctrl-C. Leftovers of a killed earlier run are removed first."""

from __future__ import annotations

import atexit
import os
import shlex
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("SAFEAPPLY_SANDBOX_PREFIX", "sat")
if worker := os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs files on parallel workers (gw0, gw1, ...):
    os.environ["SAFEAPPLY_SANDBOX_PREFIX"] += worker.removeprefix("gw")  # each has sandboxes of its own

from safeapply import sandbox as sb
from safeapply.inventory import resolve_hosts
from safeapply.transport.base import Transport


class Sandbox:
    """A booted sandbox host, as tests see it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.paths = sb.SandboxPaths(name)
        self.inventory = self.paths.inventory

    def transport(self, user: str = "root", accept_new_host_keys: bool = False) -> Transport:
        host = resolve_hosts([str(self.inventory)], self.name)[0]
        host.vars["ansible_user"] = user
        return host.connect(accept_new_host_keys)

    def sh_rc(self, cmd: str, user: str = "root", stdin: bytes | None = None) -> tuple[int, str]:
        """Run a shell command through plain OpenSSH: ground truth independent of our transport."""
        proc = subprocess.run(
            ["ssh", "-F", str(self.paths.ssh_config), "-l", user, self.name, cmd],
            input=stdin, capture_output=True, check=False, timeout=120,
        )
        return proc.returncode, (proc.stdout + proc.stderr).decode("utf-8", "replace")

    def sh(self, cmd: str, user: str = "root", stdin: bytes | None = None) -> str:
        rc, out = self.sh_rc(cmd, user, stdin)
        if rc != 0:
            raise AssertionError(f"{self.name}: `{cmd}` exited {rc}: {out}")
        return out

    def inside(self, cmd: str) -> str:
        """Run a shell command as root inside the sandbox without SSH (nsenter into its init's namespaces): for
        sandboxes without root login, and for undoing a lockout that SSH cannot get through."""
        leader = sb.info(self.paths).leader_pid
        assert leader is not None, f"{self.name} is not running"
        proc = subprocess.run(["nsenter", "-t", str(leader), "-m", "-u", "-i", "-n", "-p", "/bin/sh", "-c", cmd],
                              capture_output=True, text=True, check=False, timeout=120)
        if proc.returncode != 0:
            raise AssertionError(f"{self.name}: inside, `{cmd}` exited {proc.returncode}: {proc.stdout}{proc.stderr}")
        return proc.stdout

    def __repr__(self) -> str:
        return f"Sandbox({self.name})"


def _can_sandbox() -> str | None:
    try:
        sb.host.require_host_support()
    except Exception as e:
        return str(e)
    return None


_made: list[str] = []
_used: list[bool] = []  # this session booted sandboxes: only then does it tear down and check for leftovers


def _teardown() -> None:
    for name in list(_made):
        sb.down(name, fast=True)
        _made.remove(name)
    sb.down_all()


@pytest.fixture(scope="session")
def sandbox_factory() -> Iterator[Callable[..., Sandbox]]:
    reason = _can_sandbox()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"sandbox hosts unavailable in CI: {reason}")
        pytest.skip(f"sandbox hosts unavailable: {reason}")
    _used.append(True)
    sb.down_all()  # what a killed earlier run left behind
    sb.ensure_rootfs()
    atexit.register(_teardown)

    def make(name: str, opts: sb.SandboxOptions = sb.host.DEFAULTS) -> Sandbox:
        """Boot `name`; `opts` as `sandbox up`'s options (login user, sudo password, network, bastion, containers)."""
        _made.append(name)
        sb.up(name, opts)
        return Sandbox(name)

    try:
        yield make
    finally:
        _teardown()


SESSION_SANDBOXES = ("a", "b")  # host_a and host_b live for the whole session


@pytest.fixture(autouse=True, scope="module")
def _down_this_modules_sandboxes() -> Iterator[None]:
    """A module's own sandboxes go when the module ends: every running sandbox holds inotify instances (128 per
    user on this kind of machine, shared by all of them), so keeping them all to the end of the session made the
    late modules' boots fail."""
    before = set(_made)
    yield
    for name in [n for n in _made if n not in before and n not in SESSION_SANDBOXES]:
        sb.down(name, fast=True)
        _made.remove(name)


@pytest.fixture(scope="session")
def host_a(sandbox_factory: Callable[[str], Sandbox]) -> Sandbox:
    """A shared sandbox. Tests that change it must put it back; tests that break it use their own."""
    return sandbox_factory("a")


@pytest.fixture(scope="session")
def host_b(sandbox_factory: Callable[[str], Sandbox]) -> Sandbox:
    return sandbox_factory("b")


SANDBOX_FIXTURES = frozenset({"sandbox_factory", "host_a", "host_b"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that uses sandbox hosts (these fixtures, directly or through another fixture) must carry the
    `sandbox` marker, so that `-m "not sandbox"` leaves out exactly those: otherwise the session stops here."""
    unmarked = [item.nodeid for item in items
                if SANDBOX_FIXTURES & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("sandbox") is None]
    if unmarked:
        raise pytest.UsageError("these tests use sandbox hosts but lack @pytest.mark.sandbox (or a module-level "
                                "`pytestmark = pytest.mark.sandbox`):\n  " + "\n  ".join(unmarked))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After every fixture is torn down: nothing of ours may be left on the machine."""
    if not _used or _can_sandbox():
        return  # a session without sandboxes never touches this prefix (another run may be using it)
    _teardown()
    left = sb.leftovers()
    if left:
        print(f"\nLEFTOVERS after the suite: {left}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def quote(s: str) -> str:
    return shlex.quote(s)


TESTS = Path(__file__).parent
