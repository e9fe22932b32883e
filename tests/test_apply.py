"""apply.py against real ansible-runner and ansible-playbook, connection=local, writing only into tmp_path."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import psutil
import pytest

from safeapply.apply import ApplyRequest, TaskEvent, run_playbook
from safeapply.errors import Terminated, UsageError

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: write a file
      copy: {dest: "{{ out }}/{{ inventory_hostname }}.txt", content: "hello\\n"}
    - name: look
      command: "true"
      changed_when: false
    - name: maybe fail
      fail: {msg: "asked to fail"}
      when: inventory_hostname in (fail_on | default('')).split(',')
    - name: skipped
      debug: {msg: never}
      when: false
"""


def _inventory(tmp_path: Path, extra: str = "") -> Path:
    inv = tmp_path / "inv.ini"
    local = "ansible_connection=local ansible_python_interpreter=\"{{ ansible_playbook_python }}\""
    inv.write_text(f"[web]\nh1 {local}\nh2 {local}\n{extra}")
    return inv


def _playbook(tmp_path: Path, text: str = PLAYBOOK) -> Path:
    pb = tmp_path / "pb.yml"
    pb.write_text(text)
    return pb


def test_success_stats_and_events(tmp_path: Path) -> None:
    events: list[TaskEvent] = []
    req = ApplyRequest(_playbook(tmp_path), [str(_inventory(tmp_path))], extra_vars=[f"out={tmp_path}"])
    res = run_playbook(req, events.append)
    assert res.ok and res.status == "successful" and res.rc == 0
    assert sorted(res.hosts) == ["h1", "h2"]
    assert res.hosts["h1"].changed == 1 and res.hosts["h1"].skipped == 2 and res.hosts["h1"].failed == 0
    assert (tmp_path / "h1.txt").read_text() == "hello\n"
    assert {(e.host, e.task) for e in res.changed_tasks} == {("h1", "write a file"), ("h2", "write a file")}
    assert ("h2", "look", "started") in {(e.host, e.task, e.status) for e in events}
    again = run_playbook(req)
    assert again.ok and not again.changed


def test_failed_host_from_structured_results(tmp_path: Path) -> None:
    req = ApplyRequest(_playbook(tmp_path), [str(_inventory(tmp_path))],
                       extra_vars=[f"out={tmp_path}", "fail_on=h2"])
    res = run_playbook(req)
    assert res.status == "failed" and res.rc != 0 and not res.ok
    assert res.failed_hosts == ["h2"] and res.host_ok("h1") and not res.host_ok("h2")
    assert [(f.host, f.task, f.message) for f in res.failures] == [("h2", "maybe fail", "asked to fail")]


def test_unreachable_host(tmp_path: Path) -> None:
    # 127.0.0.1 port 1: nothing listens there, so ssh is refused (loopback only).
    inv = _inventory(tmp_path, "[dead]\nh3 ansible_host=127.0.0.1 ansible_port=1 ansible_connection=ssh\n")
    res = run_playbook(ApplyRequest(_playbook(tmp_path), [str(inv)], extra_vars=[f"out={tmp_path}"]))
    assert res.unreachable_hosts == ["h3"] and res.failed_hosts == []
    assert res.host_ok("h1") and not res.host_ok("h3")
    assert any(f.host == "h3" and f.status == "unreachable" for f in res.failures)


def test_limit_and_check_mode_with_diff(tmp_path: Path) -> None:
    req = ApplyRequest(_playbook(tmp_path), [str(_inventory(tmp_path))], limit="h1",
                       extra_vars=[f"out={tmp_path}"], check=True)
    res = run_playbook(req)
    assert res.ok and res.check and list(res.hosts) == ["h1"] and res.changed
    assert not (tmp_path / "h1.txt").exists()  # check mode changed nothing
    assert res.diffs["h1"] and "hello" in str(res.diffs["h1"])


def test_sigterm_cancels_and_reports(tmp_path: Path) -> None:
    pb = _playbook(tmp_path, """
- hosts: all
  gather_facts: false
  tasks:
    - name: long
      command: sleep 6173
""")

    during: dict[int, object] = {}

    def on_event(ev: TaskEvent) -> None:
        if ev.task == "long" and ev.status == "started":
            during.update({s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)})
            os.kill(os.getpid(), signal.SIGTERM)

    def before_the_run(signum: int, _frame: object) -> None:
        raise AssertionError(f"signal {signum} reached the handler installed before the run, not the run's")

    old_term = signal.signal(signal.SIGTERM, before_the_run)
    old_int = signal.getsignal(signal.SIGINT)
    try:
        res = run_playbook(ApplyRequest(pb, [str(_inventory(tmp_path))], limit="h1"), on_event)
        after = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    finally:
        signal.signal(signal.SIGTERM, old_term)
    assert res.status == "canceled" and res.interrupted_by == signal.SIGTERM
    assert not res.host_ok("h1")
    with pytest.raises(Terminated):
        res.raise_if_interrupted()
    # while the playbook ran, Ctrl-C and SIGTERM went to the run's own handler (which cancels it) ...
    assert during[signal.SIGTERM] not in (before_the_run, signal.SIG_DFL, signal.SIG_IGN, None), during
    assert during[signal.SIGINT] not in (old_int, signal.SIG_DFL, signal.SIG_IGN, None), during
    # ... and afterwards exactly the handlers from before the run are back
    assert after == {signal.SIGINT: old_int, signal.SIGTERM: before_the_run}
    # nothing of the playbook lives on: not ansible-playbook's workers, not the task's command
    left = [p for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] and (p.info["cmdline"][:2] == ["sleep", "6173"] or str(pb) in p.info["cmdline"])]
    assert not left, left


def test_missing_playbook(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        run_playbook(ApplyRequest(tmp_path / "nope.yml", [str(_inventory(tmp_path))]))


def test_syntax_error_reported(tmp_path: Path) -> None:
    pb = _playbook(tmp_path, "- hosts: all\n  tasks:\n    - no_such_module_here: {}\n")
    res = run_playbook(ApplyRequest(pb, [str(_inventory(tmp_path))]))
    assert not res.ok and res.rc != 0 and res.hosts == {}
    assert "no_such_module_here" in res.error


def test_diffs_in_the_result_are_redacted(tmp_path: Path) -> None:
    conf, key = tmp_path / "app.conf", tmp_path / "server.key"
    pb = _playbook(tmp_path, f"""
- hosts: h1
  gather_facts: false
  tasks:
    - copy: {{dest: "{conf}", content: "port = 80\\npassword = hunter2\\n"}}
    - copy: {{dest: "{key}", content: "not even a real key\\n"}}
""")
    res = run_playbook(ApplyRequest(pb, [str(_inventory(tmp_path))], check=True))
    assert res.ok and res.diffs["h1"], res
    text = json.dumps(res.to_dict())
    assert "port = 80" in text and "<redacted>" in text
    assert "hunter2" not in text and "not even a real key" not in text
