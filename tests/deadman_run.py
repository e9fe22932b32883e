"""`safeapply run` with the dead-man's switch, for tests/test_deadman_e2e.py, until the CLI wires the guard
itself: the same objects the `run` command builds (options, reporter, store, pipeline), plus
`DeadmanGuard(deadline)`. Usage: deadman_run.py DEADLINE PLAYBOOK -i INVENTORY."""

from __future__ import annotations

import sys
from pathlib import Path

from safeapply.cli.output import console
from safeapply.cli.run import _confirm, _Reporter
from safeapply.deadman.guard import DeadmanGuard
from safeapply.records import RunStore
from safeapply.run import Pipeline, RunOptions


def main(argv: list[str]) -> int:
    deadline, playbook, inventory = float(argv[0]), Path(argv[1]), argv[3]
    store = RunStore()
    guard = DeadmanGuard(deadline, progress=lambda m: console.print(m, markup=False))
    pipeline = Pipeline(RunOptions(playbook, [inventory], yes=True), _Reporter(False), _confirm(True),
                        guards=[guard], store=store)
    guard.bind(pipeline.rec, store)
    console.print(f"run {pipeline.rec.id}", markup=False)
    outcome = pipeline.run()
    console.print(f"run {outcome.record.id}: {outcome.message} (exit {outcome.exit_code})", markup=False)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
