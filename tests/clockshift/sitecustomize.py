"""Test-only: shift this Python process's wall clock by SAFEAPPLY_TEST_CLOCK_SHIFT seconds (its monotonic clock
is left true), as a controller whose clock is wrong would see it. Put on PYTHONPATH by
tests/test_deadman_clock.py for the `safeapply` process alone: the variable is removed at once, so the
processes it starts (ansible-playbook, ssh) keep this machine's clock. (libfaketime is the usual tool, but
its sleep and timed-wait interception makes Python 3.11's time.sleep fail with EINVAL and Event.wait hang.)
Never set a clock: this changes nothing outside the process."""

import datetime
import os
import time

_shift = float(os.environ.pop("SAFEAPPLY_TEST_CLOCK_SHIFT", "0") or 0)
if _shift:
    _time, _time_ns, _base = time.time, time.time_ns, datetime.datetime

    def _shifted() -> float:
        return _time() + _shift

    def _shifted_ns() -> int:
        return _time_ns() + int(_shift * 1e9)

    class _Shifted(_base):  # type: ignore[misc,valid-type]
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def]
            return _base.fromtimestamp(_shifted(), tz)

        @classmethod
        def utcnow(cls):  # type: ignore[no-untyped-def]
            return _base.fromtimestamp(_shifted(), datetime.UTC).replace(tzinfo=None)

        @classmethod
        def today(cls):  # type: ignore[no-untyped-def]
            return _base.fromtimestamp(_shifted())

    time.time, time.time_ns = _shifted, _shifted_ns
    datetime.datetime = _Shifted  # type: ignore[misc]
