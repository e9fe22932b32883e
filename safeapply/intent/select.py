"""Which tasks of a playbook run: `--tags`, `--skip-tags`, `--start-at-task`, read and decided by Ansible.

The options are parsed by ansible-playbook's own option parser (comma lists, the `[tags]` defaults of
ansible.cfg), the play's tasks are filtered by Ansible's `PlayIterator` (which calls
`Block.filter_tagged_tasks` -> `Taggable.evaluate_tags`: `always`, `never`, `tagged`, tags inherited from
plays, roles, blocks and imports) and walked as the strategy walks them (`--start-at-task` included). Tasks an
include brings in are filtered the way the linear strategy filters them (`filtered_include`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from safeapply.errors import UsageError


@dataclass(frozen=True)
class Selection:
    """ansible-playbook's task selection, as its option parser left it."""

    tags: tuple[str, ...] = ("all",)
    skip_tags: tuple[str, ...] = ()
    start_at_task: str | None = None

    @property
    def narrowed(self) -> bool:
        return set(self.tags) != {"all"} or bool(self.skip_tags) or self.start_at_task is not None


def parse(tags: Sequence[str] = (), skip_tags: Sequence[str] = (), start_at_task: str | None = None,
          passthrough: Sequence[str] = ()) -> Selection:
    """The selection ansible-playbook makes of these options (and of any handed to it verbatim after `--`).
    An option ansible-playbook does not know is a UsageError now, before anything runs."""
    from ansible.cli import CLI
    from ansible.cli.playbook import PlaybookCLI

    args = [a for t in tags for a in ("--tags", t)] + [a for t in skip_tags for a in ("--skip-tags", t)]
    args += ["--start-at-task", start_at_task] if start_at_task is not None else []
    args += [*passthrough, "playbook.yml"]
    cli = PlaybookCLI(["ansible-playbook", *args])
    cli.init_parser()
    cli.parser.error = _refuse
    options = CLI.post_process_args(cli, cli.parser.parse_args(args))  # tags only: not the verbosity side effect
    return Selection(tuple(sorted(options.tags or ("all",))), tuple(sorted(options.skip_tags or ())),
                     options.start_at_task)


def _refuse(message: str) -> NoReturn:
    raise UsageError(f"ansible-playbook would refuse these options: {message}",
                     "see `ansible-playbook --help`; after `--` only ansible-playbook's own options go")


class Walker:
    """Per play and host, the tasks the play iterator hands out (ids), with `--start-at-task` across plays as
    the task queue manager carries it."""

    def __init__(self, selection: Selection, inventory: Any, vm: Any) -> None:
        self.sel, self.inventory, self.vm = selection, inventory, vm
        self.start_at_done = selection.start_at_task is None

    def prepare(self, play: Any) -> None:
        """Set the play's tags as `Play.__init__` sets them from ansible-playbook's parsed options."""
        play.only_tags = set(self.sel.tags) or frozenset(("all",))
        play.skip_tags = set(self.sel.skip_tags)

    def runs(self, play: Any, host: Any | None) -> set[str]:
        """The ids (`_uuid`) of the play's tasks this host is handed, in the iterator's own walk. Called for
        every play in order (`host` None when the host is not in it): a match of --start-at-task in one play
        lets every later play run whole."""
        from ansible.executor.play_iterator import IteratingStates, PlayIterator
        from ansible.playbook.play_context import PlayContext

        self.prepare(play)
        pc = PlayContext(play=play)
        pc.start_at_task = None if self.start_at_done else self.sel.start_at_task
        it = PlayIterator(self.inventory, play, pc, self.vm, self.vm.get_vars(play=play),
                          start_at_done=self.start_at_done)
        if pc.start_at_task is None:
            self.start_at_done = True
        out: set[str] = set()
        while host is not None:
            state, task = it.get_next_task_for_host(host)
            if task is None or state.run_state == IteratingStates.COMPLETE:
                break
            out.add(task._uuid)
        return out

    def check_started(self) -> None:
        """ansible-playbook stops with this error when --start-at-task matched no task."""
        if not self.start_at_done:
            raise UsageError(f"--start-at-task {self.sel.start_at_task!r} matches no task of the playbook",
                             "give a task's name (shell-style patterns work); it can only follow static imports")


def filtered_include(blocks: list[Any], vm: Any, play: Any, host: Any) -> list[Any]:
    """The blocks an include brought in, filtered by tags as the linear strategy does."""
    out = []
    for block in blocks:
        task_vars = vm.get_vars(play=play, task=block.get_first_parent_include(), host=host)
        kept = block.filter_tagged_tasks(task_vars)
        if kept.has_tasks():
            out.append(kept)
    return out
