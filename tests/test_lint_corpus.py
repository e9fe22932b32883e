"""Regression corpus (issue 14): projects in the shapes of maintained roles never block; AI-style broken
playbooks each block for their actual cause, and for nothing else.

tests/lint_corpus/good/<case>/site.yml (or the file named in TARGET) and tests/lint_corpus/bad/<case>/site.yml,
whose first line says `# expect: <rule-id>`. Safeapply's own rules run per case (fast, real Ansible);
ansible-lint runs once over the whole good corpus, since a false block from it blocks a run just the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from safeapply.lint import Connection, Severity, external, lint_paths

CORPUS = Path(__file__).parent / "lint_corpus"
GOOD = sorted(p for p in (CORPUS / "good").iterdir() if p.is_dir())
BAD = sorted(p for p in (CORPUS / "bad").iterdir() if p.is_dir())
# the inventory logs in as a sudo user: the strictest context for the lockout and sudoers rules
LOGIN = {"web1": Connection(user="deploy", port=22)}


def target(case: Path) -> Path:
    named = case / "TARGET"
    return case / named.read_text().strip() if named.is_file() else case / "site.yml"


def expected(case: Path) -> str:
    first = (case / "site.yml").read_text().splitlines()[0]
    assert first.startswith("# expect: "), case
    return first.split(":", 1)[1].strip()


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEAPPLY_STATE_DIR", str(tmp_path / "state"))


def test_corpus_size() -> None:
    assert len(GOOD) >= 30 and len(BAD) >= 30
    assert (CORPUS / "good" / "03-symlinked-roles" / "roles" / "nginx").is_symlink()


@pytest.mark.parametrize("case", GOOD, ids=[p.name for p in GOOD])
def test_maintained_shapes_do_not_block(case: Path) -> None:
    report = lint_paths([target(case)], use_cache=False, ansible_lint=False, connection=LOGIN)
    assert [(f.rule, f.file, f.line, f.message) for f in report.blocking] == []


@pytest.mark.parametrize("case", BAD, ids=[p.name for p in BAD])
def test_ai_style_mistakes_block_for_their_cause(case: Path) -> None:
    report = lint_paths([target(case)], use_cache=False, ansible_lint=False, connection=LOGIN)
    assert sorted({f.rule for f in report.blocking}) == [expected(case)], report.blocking


def test_ansible_lint_and_syntax_check_do_not_block_the_good_corpus() -> None:
    """One ansible-lint run (with its syntax check) over every good case."""
    from safeapply.lint.engine import project_root
    from safeapply.lint.project import load_project
    from safeapply.lint.quick import needs_mock

    files = [target(c) for c in GOOD if target(c).name == "site.yml"]
    root = project_root(files[:1]).parent
    mocks: set[str] = set()
    for f in files:
        mocks |= {t.action for t in load_project([f], f.parent).tasks if t.action and needs_mock(t.action)}
    running = external.start(files, root, None, sorted(mocks))
    found = external.collect(running, set())
    assert not [f for f in found if f.rule == external.INCOMPLETE], found
    assert [(f.rule, f.file, f.line, f.message) for f in found if f.severity is Severity.BLOCKING] == []
