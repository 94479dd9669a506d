"""The verifier on real data (MBPP references, QuixBugs bugs), against ground truth, and its feedback."""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from dsl import Verifier, load_mbpp, load_tasks, plan_tests
from dsl.sandbox import isolation
from dsl.tasks import shared_dir
from dsl.verifier import PlanError

QUIXBUGS = shared_dir() / "bench" / "quixbugs.jsonl"


@pytest.fixture(scope="module")
def verifier():
    v = Verifier()
    yield v
    v.close()


def test_every_mbpp_reference_passes(verifier):
    tasks = load_mbpp(["prompt", "test", "validation", "train"])
    assert len(tasks) == 974
    failing = [t.id for t in tasks if not verifier.verify(t.code, t.tests, 20).passed]
    assert failing == []


def test_every_quixbugs_bug_fails(verifier):
    tasks = load_tasks(QUIXBUGS)
    assert len(tasks) == 40
    results = {t.id: verifier.verify(t.code, t.tests, t.timeout_s) for t in tasks}
    assert [i for i, r in results.items() if r.passed] == []
    assert all(r.tests_total > 0 for r in results.values())  # every task's tests were found


def _bare_python_passes(code: str, tests: str) -> bool:
    try:
        run = subprocess.run([sys.executable, "-c", code + "\n\n" + tests], capture_output=True, timeout=10,
                             cwd="/tmp", stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False
    return run.returncode == 0


def test_corrupted_mbpp_verdicts_match_plain_python(verifier):
    """Differential check against the task definition (code + tests runs without raising)."""
    rng = random.Random(7)
    tasks = load_mbpp(["test"])
    sample = rng.sample(tasks, 120)
    n_fail = 0
    for task in sample:
        lines = task.code.split("\n")
        body = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith(("def ", "import", "from"))]
        i = rng.choice(body)
        buggy = "\n".join(lines[:i] + lines[i + 1:]) if rng.random() < 0.5 else \
            "\n".join(lines[:i] + [lines[i].replace("1", "2").replace("+", "-").replace("<", ">")] + lines[i + 1:])
        ours = verifier.verify(buggy, task.tests, 10).passed
        assert ours == _bare_python_passes(buggy, task.tests), (task.id, buggy)
        n_fail += not ours
    assert n_fail > 60  # the corruptions mostly break the code


def test_isolation_is_bwrap_where_available(verifier):
    if not Path("/usr/bin/bwrap").exists():
        pytest.skip("bubblewrap not installed")
    r = verifier.verify("x = 1", "assert x == 1")
    assert r.passed and r.isolation == "bwrap" == isolation()


def test_without_bwrap_falls_back_visibly(tmp_path):
    script = ("import logging; logging.basicConfig(); from dsl import Verifier; "
              "r = Verifier().verify('x = 1', 'assert x == 1\\nassert x == 2'); "
              "print(r.isolation, r.tests_passed, r.tests_total, r.passed)")
    env = {**os.environ, "PATH": str(tmp_path)}  # no bwrap on PATH
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert run.stdout.split() == ["none", "1", "2", "False"]
    assert "WITHOUT namespace isolation" in run.stderr


FEEDBACK = [
    ("def f(x):\n    return x +\n", "assert f(1) == 2", "SyntaxError at line 2: invalid syntax"),
    ("def f(x):\n    return x\nundefined_name\n", "assert f(1) == 1",
     "Error running the code: NameError: name 'undefined_name' is not defined (line 3)"),
    ("def f(x):\n    return x + 2\n", "assert f(1) == 2\nassert f(0) == 2",
     "Tests: 1/2 pass.\nFailed: assert f(1) == 2\nGot: 3\nExpected: 2"),
    ("def f(x):\n    return str(x)\n", "assert f(1) == 1", "Tests: 0/1 pass.\nFailed: assert f(1) == 1\nGot: '1'\nExpected: 1"),
    ("def f(x):\n    y = 0\n    return x / y\n", "assert f(1) == 2",
     "Tests: 0/1 pass.\nFailed: assert f(1) == 2\nZeroDivisionError: division by zero (line 3)"),
    ("def f(x):\n    return x\n", "assert f(1) > 5", "Tests: 0/1 pass.\nFailed: assert f(1) > 5\nAssertionError"),
    ("def f(x):\n    return x\n",
     "def test_one():\n    assert f(1) == 2, 'f(1) returned 1, expected 2'\n\ndef test_two():\n    assert f(2) == 2\n",
     "Tests: 1/2 pass.\nFailed: test_one()\nassert f(1) == 2, 'f(1) returned 1, expected 2'\n"
     "AssertionError: f(1) returned 1, expected 2"),
    # a test function shows its failing line; its `assert a == b` reports both sides, as a top-level one does
    ("def f(x):\n    return x\n", "def test_one():\n    y = f(1)\n    assert f(0) == 0\n    assert [y] == [2]\n",
     "Tests: 0/1 pass.\nFailed: test_one()\nassert [y] == [2]\nGot: [1]\nExpected: [2]"),
    ("def f(x):\n    return 1 / x\n", "def test_one():\n    assert f(1) == 1\n    assert f(0) == 0\n",
     "Tests: 0/1 pass.\nFailed: test_one()\nassert f(0) == 0\nZeroDivisionError: division by zero (line 2)"),
    # a forged tag changes only what the feedback says, never pass or fail
    ("def f(x):\n    raise AssertionError(('\\x00coedit-eq', 1, 2))\n", "def test_one():\n    f(1)\n",
     "Tests: 0/1 pass.\nFailed: test_one()\nf(1)\nGot: 1\nExpected: 2"),
    ("def f(x):\n    return x\n", "def check(c):\n    assert c(2) == 3\ncheck(f)", "Tests: 0/1 pass.\nFailed: check(f)\nAssertionError"),
    ("import os\ndef f(x):\n    os._exit(0)\n", "assert f(1) == 1",
     "Tests: 0/1 pass.\nFailed: assert f(1) == 1\nThe process ended during this test (exit code 0)."),
    ("def f(x):\n    return x\n", "assert f(1) == 1\nassert f(2) == 2", "All 2 tests pass."),
]


@pytest.mark.parametrize("code,tests,expected", FEEDBACK)
def test_feedback_golden(verifier, code, tests, expected):
    assert verifier.verify(code, tests).feedback == expected


def test_timeout_feedback_and_partial_results(verifier):
    r = verifier.verify("def f(x):\n    while x:\n        pass\n    return x\n",
                        "assert f(0) == 0\nassert f(1) == 1\nassert f(0) == 0", timeout_s=1)
    assert (r.passed, r.timed_out, r.tests_passed, r.tests_total) == (False, True, 1, 3)
    assert r.feedback == "Tests: 1/3 pass.\nFailed: assert f(1) == 1\nTimeout: still running after 1s."
    assert [t.status for t in r.tests] == ["pass", "timeout", "not run"]


def test_failing_top_level_statement_fails_the_run(verifier):
    r = verifier.verify("def f(x):\n    return x\n", "import nonexistent_mod\nassert f(1) == 1")
    assert not r.passed
    assert "ModuleNotFoundError: No module named 'nonexistent_mod'" in r.feedback


def test_quixbugs_style_runner_counts_each_test_function(verifier):
    tests = ("def test_1():\n    assert f(1) == 1\n\ndef test_2():\n    assert f(2) == 3\n\n"
             "def _run_all():\n    for t in (test_1, test_2):\n        t()\n\n_run_all()\n")
    r = verifier.verify("def f(x):\n    return x\n", tests)
    assert (r.passed, r.tests_passed, r.tests_total) == (False, 1, 2)
    r = verifier.verify("def f(x):\n    return 3 if x == 2 else x\n", tests)
    assert (r.passed, r.tests_passed, r.tests_total) == (True, 2, 2)


def test_output_is_captured_and_capped(verifier):
    r = verifier.verify("print('hello from code')\ndef f():\n    return 1\n", "assert f() == 1")
    assert r.passed and "hello from code" in r.output


def test_fresh_mode_agrees_with_fork_mode(verifier):
    fresh = Verifier("fresh")
    for code, tests, _ in FEEDBACK:
        a, b = verifier.verify(code, tests), fresh.verify(code, tests)
        assert (a.passed, a.tests_passed, a.tests_total, a.feedback) == (b.passed, b.tests_passed, b.tests_total, b.feedback)


def test_plan_counts_tests_from_the_source():
    plan = plan_tests("import math\nassert f(1) == 1\nassert g()\ncheck(f)\n\ndef test_a():\n    pass\n\n"
                      "def test_needs_fixture(tmp_path):\n    pass\n\ndef helper():\n    pass\n")
    kinds = [plan.steps[i]["kind"] for i in plan.test_steps]
    assert kinds == ["assert_eq", "assert", "check", "call"]
    with pytest.raises(PlanError, match="no tests found"):
        plan_tests("x = 1\n")
    with pytest.raises(PlanError, match="do not parse"):
        plan_tests("assert (\n")


@pytest.mark.parametrize("code,tests,needle", [
    (b"\xff\xfe def f(): pass", "assert f() is None", "not valid UTF-8"),
    ("def f():\n    return 1\n", "", "no tests found"),
    ("def f():\n    return 1\n", "assert (", "do not parse"),
    (123, "assert True", "must be text"),
])
def test_bad_input_gets_a_clear_result(verifier, code, tests, needle):
    r = verifier.verify(code, tests)
    assert not r.passed and needle in r.feedback and r.code_status == "invalid"


def test_nul_bytes_and_huge_lines(verifier):
    r = verifier.verify("def f():\n    return 1\x00\n", "assert f() == 1")
    assert not r.passed and r.code_status == "syntax" and "null bytes" in r.feedback
    long = "x = '" + "a" * 1_000_000 + "'\ndef f():\n    return len(x)\n"
    r = verifier.verify(long, "assert f() == 1000000")
    assert r.passed
    r = verifier.verify("", "assert f() == 1")
    assert not r.passed and "NameError" in r.feedback
