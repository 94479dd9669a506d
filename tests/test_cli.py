"""`python -m dsl` as a person runs it: check, verify, play, demo."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dsl import Task, write_tasks

ROOT = Path(__file__).resolve().parents[1]


def dsl(*args: str, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dsl", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def tasks_file(tmp_path: Path) -> Path:
    path = tmp_path / "tasks.jsonl"
    write_tasks(path, [Task("good", "def f(x):\n    return x\n", "assert f(1) == 1\nassert f(2) == 2"),
                       Task("bad", "def f(x):\n    return -x\n", "assert f(1) == 1\nassert f(0) == 0")])
    return path


def test_check_json_lines(tmp_path):
    run = dsl("check", str(tasks_file(tmp_path)), "--json")
    assert run.returncode == 0
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert rows == [{"id": "good", "passed": True, "tests_passed": 2, "tests_total": 2},
                    {"id": "bad", "passed": False, "tests_passed": 1, "tests_total": 2}]
    assert "1/2 tasks pass" in run.stderr


def test_check_text_and_bad_file(tmp_path):
    run = dsl("check", str(tasks_file(tmp_path)))
    assert run.stdout.splitlines()[0] == "PASS good 2/2 "
    assert run.stdout.splitlines()[1].startswith("FAIL bad 1/2 Expected: 1")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    run = dsl("check", str(bad))
    assert run.returncode == 2 and "bad.jsonl:1: not JSON" in run.stderr and "Traceback" not in run.stderr


def test_verify_prints_feedback_and_exit_status(tmp_path):
    code, tests = tmp_path / "code.py", tmp_path / "tests.py"
    code.write_text("def f(x):\n    return x + 1\n")
    tests.write_text("assert f(1) == 1\n")
    run = dsl("verify", str(code), str(tests))
    assert run.returncode == 1
    assert run.stdout == "Tests: 0/1 pass.\nFailed: assert f(1) == 1\nGot: 2\nExpected: 1\n"
    code.write_text("def f(x):\n    return x\n")
    run = dsl("verify", str(code), str(tests), "--timeout", "3")
    assert (run.returncode, run.stdout) == (0, "All 1 tests pass.\n")
    run = dsl("verify", str(tmp_path / "missing.py"), str(tests))
    assert run.returncode == 2 and "No such file" in run.stderr


def test_play_shows_what_the_model_sees(tmp_path):
    run = dsl("play", str(tasks_file(tmp_path)), "--id", "bad", stdin="DELL 7\nREPW 2 >>>-x >>>x\nEXIT\n")
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert out.startswith("[system]\nYou repair Python code by editing it")
    assert "Code:\nL 1 def f(x):\nL 2     return -x\n***\nTests: 1/2 pass." in out
    assert "DELL 7: no such line (the code has lines 1-2)." in out
    assert "reward -0.5" in out and "reward +1.0" in out
    assert out.rstrip().endswith("solved in 3 turns, reward +0.5")


def test_play_unknown_id(tmp_path):
    run = dsl("play", str(tasks_file(tmp_path)), "--id", "nope")
    assert run.returncode == 2 and "no task 'nope'" in run.stderr


def test_demo_repairs_an_mbpp_task():
    run = dsl("demo", "--id", "mbpp/11")
    assert run.returncode == 0, run.stderr
    assert "[initial state]\nL 1 def remove_Occ(s,ch):" in run.stdout
    assert run.stdout.rstrip().endswith("solved in 2 turns, reward +1.0")
