"""bench/task_views.py: diagnostic views of an evaluation set change its form, never what it checks."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import task_views  # noqa: E402

from dsl import Verifier, load_tasks  # noqa: E402

CODE = 'def inc(n):\n    return n + 2\n\n\n"""\nInc\n    >>> inc(1)\n    2\n"""\n'
RUNNER_TESTS = '''def test_1():
    assert inc(1) == 2


def test_2():
    assert inc(0) == 1


_NAMES = ["test_1", "test_2"]


def _run_all():
    failures = [n for n in _NAMES if not _passes(n)]
    if failures:
        raise AssertionError(f"{len(failures)}/2 tests failed")


def _passes(name):
    try:
        globals()[name]()
        return True
    except AssertionError:
        return False


_run_all()
'''


def test_views_cut_the_docstring_and_the_runner_and_the_bug_still_fails(tmp_path, capsys):
    src = tmp_path / "tasks.jsonl"
    src.write_text(json.dumps({"id": "t/inc", "entry_point": "inc", "code": CODE, "tests": RUNNER_TESTS}) + "\n")
    assert task_views.main([str(src), "--out", str(tmp_path / "v")]) == 0
    assert "every one still fails" in capsys.readouterr().out
    nodoc, = load_tasks(tmp_path / "v" / "nodoc.jsonl")
    both, = load_tasks(tmp_path / "v" / "nodoc_norunner.jsonl")
    assert nodoc.code == "def inc(n):\n    return n + 2\n" and nodoc.tests == RUNNER_TESTS
    assert both.code == nodoc.code and "_run_all" not in both.tests and both.tests.rstrip().endswith("assert inc(0) == 1")
    v = Verifier()
    try:
        as_is = v.verify(CODE, RUNNER_TESTS)
        cut = v.verify(both.code, both.tests)
        fixed = v.verify(both.code.replace("n + 2", "n + 1"), both.tests)
    finally:
        v.close()
    assert "_run_all()" in as_is.feedback and not as_is.passed
    assert cut.feedback.startswith("Tests: 0/2 pass.\nFailed: test_1()") and "Got: 3" in cut.feedback
    assert fixed.passed


def test_a_tail_with_tests_of_its_own_is_kept():
    tests = "def test_1():\n    assert inc(1) == 2\n\n\nprint('tail')\nassert inc(0) == 1\n"
    assert task_views.without_runner(tests) == tests
    assert task_views.without_runner("assert inc(1) == 2\n") == "assert inc(1) == 2\n"
    assert task_views.without_trailing_docstring('"""only a docstring"""\n') == '"""only a docstring"""\n'


def test_a_view_that_would_let_a_bug_pass_is_refused(tmp_path):
    """The runner is the only check that catches this bug: cutting it would change the benchmark."""
    tests = "def test_1():\n    assert inc(1) >= 0\n\n\nif inc(1) != 2:\n    raise AssertionError('runner')\n"
    src = tmp_path / "tasks.jsonl"
    src.write_text(json.dumps({"id": "t/inc", "code": CODE, "tests": tests}) + "\n")
    with pytest.raises(SystemExit, match="buggy programs pass: \\['t/inc'\\]"):
        task_views.main([str(src), "--out", str(tmp_path / "v")])


def test_code_that_does_not_parse_is_left_as_it_is_and_a_bad_file_is_a_clear_error(tmp_path):
    assert task_views.without_trailing_docstring("def f(:\n    pass\n") == "def f(:\n    pass\n"
    assert task_views.without_runner("def test_1(:\n") == "def test_1(:\n"
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(SystemExit, match="task_views: .*bad.jsonl:1: not JSON"):
        task_views.main([str(tmp_path / "bad.jsonl"), "--out", str(tmp_path / "v")])
