"""ansible-playbook's own options reach it through ansible-runner (tags, --start-at-task, diff, verbosity, `--`),
and what a failure said comes back redacted, capped, item by item — on localhost (local connection, files under
a temp dir only)."""

from __future__ import annotations

import stat
from pathlib import Path

from safeapply.apply import SCREENFUL, ApplyRequest, TaskEvent, failure_detail, run_playbook

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: plain
      copy: {dest: "{{ out }}/plain.txt", content: "plain\\n"}
    - name: tagged
      copy: {dest: "{{ out }}/tagged.txt", content: "token=abcdefgh12345678\\n"}
      tags: [t]
    - name: never
      copy: {dest: "{{ out }}/never.txt", content: "never\\n"}
      tags: [never]
"""


def _setup(tmp_path: Path, text: str = PLAYBOOK) -> tuple[Path, Path]:
    inv = tmp_path / "inv.ini"
    inv.write_text("h1 ansible_connection=local ansible_python_interpreter=\"{{ ansible_playbook_python }}\"\n")
    pb = tmp_path / "pb.yml"
    pb.write_text(text)
    return pb, inv


def test_tags_and_passthrough_reach_ansible_playbook(tmp_path: Path) -> None:
    pb, inv = _setup(tmp_path)
    res = run_playbook(ApplyRequest(pb, [str(inv)], extra_vars=[f"out={tmp_path}"], tags=["t"],
                                    ansible_args=["--skip-tags", "nothing", "--forks", "2"]))
    assert res.ok
    assert sorted(p.name for p in tmp_path.glob("*.txt")) == ["tagged.txt"]


def test_diff_verbosity_and_the_log(tmp_path: Path) -> None:
    pb, inv = _setup(tmp_path)
    seen: list[TaskEvent] = []
    log = tmp_path / "logs" / "run.log"
    res = run_playbook(ApplyRequest(pb, [str(inv)], extra_vars=[f"out={tmp_path}"], diff=True, verbosity=2,
                                    start_at_task="tagged", log=log), seen.append)
    assert res.ok and res.log == str(log)
    [changed] = [e for e in seen if e.status == "changed"]
    assert changed.task == "tagged" and "+token=<redacted>" in changed.diff and "abcdefgh" not in changed.diff
    assert any(e.status == "output" and "TASK [tagged]" in e.message for e in seen)
    text = log.read_text()
    assert "TASK [tagged]" in text and "TASK [plain]" not in text and "abcdefgh12345678" not in text
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_a_failed_loop_item_comes_back_with_its_item_and_stderr(tmp_path: Path) -> None:
    pb, inv = _setup(tmp_path, """
- hosts: all
  gather_facts: false
  tasks:
    - name: loop
      command: "ls {{ item }}"
      loop: ["/", "/ta-none-here"]
""")
    seen: list[TaskEvent] = []
    res = run_playbook(ApplyRequest(pb, [str(inv)]), seen.append)
    [item] = [e for e in res.failures if e.item]
    assert item.item == "/ta-none-here"
    assert "stderr: ls: cannot access '/ta-none-here'" in item.detail


def test_failure_detail_is_redacted_and_capped() -> None:
    res = {"msg": "non-zero return code", "stderr": "E: password=hunter2hunter2 rejected",
           "stdout": "\n".join(f"line {i}" for i in range(100))}
    text = failure_detail(res)
    assert "hunter2" not in text and "password=<redacted>" in text
    assert "line 99" in text and "line 89" not in text and "(last 10 lines)" in text
    long = failure_detail({"stderr": "\n".join(f"e{i}" for i in range(200))})
    assert len(long.splitlines()) == SCREENFUL and "more lines in `safeapply show RUN --log`" in long
