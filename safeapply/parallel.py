"""Run one function per host in parallel; collect each host's result or its safeapply error."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from safeapply.errors import SafeapplyError

T = TypeVar("T")


class Named(Protocol):
    @property
    def name(self) -> str: ...


H = TypeVar("H", bound=Named)


def per_host(hosts: Sequence[H], fn: Callable[[H], T], workers: int | None = None) -> dict[str, T | SafeapplyError]:
    """Results in host order. A SafeapplyError is returned for its host; any other exception propagates.
    At most `workers` at once: by default Ansible's forks (-f, ansible.cfg), as ansible-playbook would."""
    workers = workers or _forks()

    def guarded(h: H) -> T | SafeapplyError:
        try:
            return fn(h)
        except SafeapplyError as e:
            return e

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(hosts)))) as pool:
        return dict(zip([h.name for h in hosts], pool.map(guarded, hosts), strict=True))


def _forks() -> int:
    from safeapply.ansible_context import forks

    return forks()


def each(hosts: Sequence[H], fn: Callable[[H], T], workers: int = 16) -> list[T]:
    """fn on every host at once, results in host order; the first error (in host order) is raised once all
    have finished — the fail-fast variant for stages where one host's error stops the run."""
    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(hosts)))) as pool:
        futures = [pool.submit(fn, h) for h in hosts]
    for f in futures:
        err = f.exception()
        if err is not None:
            raise err
    return [f.result() for f in futures]
