"""What a run's record says when it ends by an exception: Ctrl-C, a signal, or a bug in safeapply itself."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from safeapply.apply import TaskEvent
from safeapply.errors import Terminated
from safeapply.records import RunStore
from safeapply.run import Pipeline
from safeapply.run_options import RunOptions


class _Raising:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def stage(self, name: str, detail: str = "") -> None:
        raise self.exc

    def task(self, event: TaskEvent) -> None:
        pass


@pytest.mark.parametrize(("exc", "code", "status"), [
    (KeyboardInterrupt(), 130, "interrupted"),
    (Terminated(signal.SIGTERM), 143, "terminated"),
    (Terminated(signal.SIGHUP), 129, "exit-129"),
    (RuntimeError("a bug"), 5, "internal-error"),
], ids=["ctrl-c", "sigterm", "sighup", "bug"])
def test_the_record_gets_the_code_the_cli_exits_with(exc: BaseException, code: int, status: str,
                                                     tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  tasks: []\n")
    store = RunStore(tmp_path / "runs.sqlite")
    pipeline = Pipeline(RunOptions(playbook=pb), _Raising(exc), lambda _w: True, store=store)
    with pytest.raises(type(exc)):
        pipeline.run()
    rec = store.get(pipeline.rec.id)
    assert (rec.exit_code, rec.status) == (code, status)
    assert rec.finished is not None
