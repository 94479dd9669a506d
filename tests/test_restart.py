"""Restarts from the furthest state (dsl/restart.py), on the real verifier, and `trainer eval --restart`."""
from __future__ import annotations

import json

from dsl import Task, progress, restart_task, run_episode, scripted_policy
from trainer.evaluate import EvalConfig, evaluate, main

# one edit takes `return x` half way (f(0) > 0 passes), the same edit again the rest of the way
STEP = Task("t/step", "def f(x):\n    return x\n", "assert f(0) > 0\nassert f(0) == 2", "f")
EDIT = "REPW 2 >>>x >>>x + 1"


def test_progress_counts_tests_then_whether_the_code_runs():
    assert progress(1, "syntax") > progress(0, "ok") > progress(0, "syntax") == progress(0, "error")


def test_restart_from_the_first_state_that_got_furthest():
    traj = run_episode(STEP, scripted_policy([EDIT, "REPL 2 >>>    return 1", "DELL 2"]))
    assert [t.tests_passed for t in traj.turns] == [1, 1, 0, 0]  # ... then EXIT
    start = restart_task(STEP, [traj])
    assert start.code == "def f(x):\n    return x + 1\n"  # turn 2 ties turn 1: the first reached wins
    assert (start.id, start.tests) == (STEP.id, STEP.tests)
    assert run_episode(start, scripted_policy([EDIT])).solved


def test_no_restart_without_progress_or_from_a_fix():
    same = run_episode(STEP, scripted_policy(["REPL 2 >>>    return x * 2", "EXIT"]))  # 0 of 2, as the start
    assert same.initial_tests_passed == 0 and same.initial_status == "ok"
    assert restart_task(STEP, [same]) is STEP and restart_task(STEP, []) is STEP
    fixed = run_episode(STEP, scripted_policy(["REPL 2 >>>    return 2"]))
    assert fixed.solved and restart_task(STEP, [same, fixed]) is STEP  # a passing state is a fix, not a start
    broken = Task("t/syntax", "def f(x):\n    return x +\n", STEP.tests, "f")
    traj = run_episode(broken, scripted_policy(["REPL 2 >>>    return x - 1", "DELL 9"]))  # runs, 0 pass; invalid
    assert traj.initial_status == "syntax" and traj.turns[1].valid is False
    assert restart_task(broken, [traj]).code == "def f(x):\n    return x - 1\n"  # code that runs beats code that does not


def test_eval_restart_best_reaches_a_fix_fresh_episodes_cannot(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(STEP.to_json() + "\n")
    script = tmp_path / "script.txt"
    script.write_text(EDIT + "\n")
    runs = {}
    for restart in ("fresh", "best"):
        out = tmp_path / f"{restart}.json"
        m = evaluate(EvalConfig(tasks=str(tasks), model=f"scripted:{script}", k=2, max_turns=1, restart=restart,
                                proposers="episodes", all_episodes=True, json=str(out)))
        runs[restart] = (m["best_of_k"], [e["solved"] for e in json.loads(out.read_text())["tasks"][0]["episodes"]])
    assert runs == {"fresh": (0.0, [False, False]), "best": (1.0, [False, True])}
    assert main(["--tasks", str(tasks), "--model", f"scripted:{script}", "--restart", "furthest"]) == 2
