"""The tasks the intent considers are the ones ansible-playbook runs: --tags, --skip-tags, always, never, tags
inherited from plays/blocks/imports, include_tasks, --start-at-task — each compared with a real
ansible-playbook run of the same playbook (local connection, debug tasks only)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from safeapply.errors import UsageError
from safeapply.intent.load import PlaybookLoader
from safeapply.intent.select import parse

PLAYBOOK = """\
- hosts: web
  gather_facts: false
  tasks:
    - name: untagged
      debug: {msg: a}
    - name: never tagged
      debug: {msg: n}
      tags: [never, debugonly]
    - block:
        - name: in a tagged block
          debug: {msg: b}
      tags: [blk]
    - name: tagged x
      debug: {msg: x}
      tags: [x]
    - name: always tagged
      debug: {msg: al}
      tags: [always]
    - name: include it
      include_tasks: inc.yml
      tags: [x]
    - import_tasks: imp.yml
      tags: [imp]
- hosts: web
  gather_facts: false
  tags: [second]
  tasks:
    - name: in the second play
      debug: {msg: p2}
"""
INC = """\
- name: included untagged
  debug: {msg: i}
- name: included x
  debug: {msg: ix}
  tags: [x]
"""
IMP = """\
- name: imported one
  debug: {msg: m}
"""

SELECTIONS = [
    [], ["-t", "x"], ["--skip-tags", "x"], ["-t", "never"], ["-t", "debugonly"], ["-t", "blk,second"],
    ["--tags", "imp"], ["--skip-tags", "always"], ["-t", "tagged"], ["--skip-tags", "all"],
    ["--start-at-task", "tagged*"], ["--start-at-task", "in the second play"], ["-t", "x", "--skip-tags", "x"],
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tags")
    (d / "site.yml").write_text(PLAYBOOK)
    (d / "inc.yml").write_text(INC)
    (d / "imp.yml").write_text(IMP)
    (d / "hosts.ini").write_text("[web]\nh1 ansible_connection=local ansible_python_interpreter=" + sys.executable
                                 + "\n")
    return d


def ansible_ran(project: Path, args: list[str]) -> list[str]:
    """The tasks ansible-playbook really ran, in order (without the include task and fact gathering)."""
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_STDOUT_CALLBACK": "default"}
    out = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "hosts.ini", "site.yml",
                          *args], cwd=project, env=env, capture_output=True, text=True, check=True).stdout
    return [t for t in re.findall(r"^TASK \[(.*?)\]", out, re.M) if t not in ("include it", "Gathering Facts")]


def planned(project: Path, args: list[str]) -> list[str]:
    """The tasks the intent resolves, with the same options parsed by ansible-playbook's parser."""
    loader = PlaybookLoader(project / "site.yml", [str(project / "hosts.ini")], [], parse(passthrough=args))
    return [rt.ref.name for h in loader.hosts(None) for rt in loader.tasks(h)]


def test_the_named_options_select_as_the_same_options_after_dashdash() -> None:
    assert parse(tags=["a,b"], skip_tags=["c"], start_at_task="t*") == \
        parse(passthrough=["-t", "a", "--tags", "b", "--skip-tags=c", "--start-at-task", "t*"])


@pytest.mark.parametrize("args", SELECTIONS, ids=lambda a: " ".join(a) or "no-options")
def test_the_intent_holds_the_tasks_ansible_runs(project: Path, args: list[str]) -> None:
    assert planned(project, args) == ansible_ran(project, args)


def test_options_after_dashdash_are_read_by_ansible_playbooks_parser() -> None:
    sel = parse(passthrough=["--tags=a,b", "--skip-tags", "c", "-vv", "--forks", "3"])
    assert (sel.tags, sel.skip_tags) == (("a", "b"), ("c",))
    with pytest.raises(UsageError, match="--no-such-option"):
        parse(passthrough=["--no-such-option"])


def test_a_start_at_task_that_matches_nothing_is_refused(project: Path) -> None:
    loader = PlaybookLoader(project / "site.yml", [str(project / "hosts.ini")], [], parse(start_at_task="nope"))
    with pytest.raises(UsageError, match="matches no task"):
        list(loader.tasks("h1"))
