"""Model episodes restart from the furthest state (dsl/repair.py's fitness), on the real verifier, and `trainer eval --restart`."""
from __future__ import annotations

import json

from dsl import Task, Verifier
from dsl.fitness import fitness
from trainer.evaluate import EvalConfig, evaluate, main

# one edit takes `return x` half way (f(0) > 0 passes), the same edit again the rest of the way
STEP = Task("t/step", "def f(x):\n    return x\n", "assert f(0) > 0\nassert f(0) == 2", "f")
EDIT = "REPW 2 >>>x >>>x + 1"


def test_fitness_counts_tests_then_whether_the_code_runs():
    v = Verifier()
    try:
        def f(code):
            return fitness(v.verify(code, STEP.tests))
        assert f("def f(x):\n    return x + 1\n") > f("def f(x):\n    return x\n")  # one more test passes
        assert f("def f(x):\n    return x\n") > f("def f(x):\n    return y\n") > f("def f(x):\n    return x +\n")
        assert f("def f(x):\n    return y\n") == f("def f(x):\n    return z\n")
    finally:
        v.close()


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
