"""Diagnostic views of a task file: the same bugs shown without what MBPP-trained models never saw.

    python bench/task_views.py ../shared/bench/quixbugs.jsonl --out runs/views
    python -m trainer eval --tasks runs/views/nodoc.jsonl --k 1 --seed 1

Writes two files beside each other, each task's bug and tests unchanged in what they check:
- `nodoc.jsonl`: the code without a trailing module docstring (a string statement after the last
  definition; QuixBugs programs end with one), as the language server, which shows the model only
  the function at the cursor, would show it;
- `nodoc_norunner.jsonl`: also the tests without the statements after their last `def test...`
  (a runner that calls the test functions and raises one aggregated error; kept when an assert or
  `check(...)` of its own is among them): the verifier then calls each test function itself, and
  its feedback names the first failing one with Got/Expected, as in the training data's
  test-function form.
Code or tests that do not parse (a bug may be a syntax error) are left as they are.
Evaluation only: these are views of an evaluation set, to ask why a model fails on it; training
on them, or on anything from QuixBugs, is out of bounds. Each view is checked to still fail as
given (a view that let a buggy program pass would change the benchmark).
"""
from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsl import Verifier, load_tasks, plan_tests, write_tasks  # noqa: E402
from dsl.tasks import TaskFileError  # noqa: E402
from dsl.verifier import PlanError  # noqa: E402


def without_trailing_docstring(code: str) -> str:
    try:
        body = ast.parse(code).body
    except (SyntaxError, ValueError):
        return code
    last = body[-1] if body else None
    if not (isinstance(last, ast.Expr) and isinstance(last.value, ast.Constant) and isinstance(last.value.value, str)
            and len(body) > 1):
        return code
    return "\n".join(code.split("\n")[: last.lineno - 1]).rstrip() + "\n"


def without_runner(tests: str) -> str:
    """What counts as a test is the verifier's rule (`dsl.plan_tests`), not restated here."""
    try:
        plan = plan_tests(tests)
    except PlanError:
        return tests
    test_lines = {step["line"] for step in plan.steps if step["kind"] == "call"}
    body = ast.parse(tests).body
    defs = [st for st in body if isinstance(st, ast.FunctionDef) and st.lineno in test_lines]
    if not defs or defs[-1] is body[-1]:
        return tests
    end = defs[-1].end_lineno
    if any(step["kind"] not in ("setup", "call") and step["line"] > end for step in plan.steps):
        return tests  # an assert or check(...) of its own after the test functions: keep all
    return "\n".join(tests.split("\n")[:end]).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tasks", help="a task JSONL file")
    ap.add_argument("--out", default="runs/views", help="directory for nodoc.jsonl and nodoc_norunner.jsonl")
    args = ap.parse_args(argv)
    try:
        tasks = load_tasks(args.tasks)
    except TaskFileError as e:
        raise SystemExit(f"task_views: {e}") from None
    nodoc = [replace(t, code=without_trailing_docstring(t.code)) for t in tasks]
    norunner = [replace(t, tests=without_runner(t.tests)) for t in nodoc]
    verifier = Verifier()
    try:
        for name, view in (("nodoc", nodoc), ("nodoc_norunner", norunner)):
            passing = [t.id for t in view if verifier.verify(t.code, t.tests, t.timeout_s).passed]
            if passing:
                raise SystemExit(f"task_views: in the {name} view these buggy programs pass: {passing}")
            n = write_tasks(Path(args.out) / f"{name}.jsonl", view)
            changed = sum(v != t for v, t in zip(view, tasks))
            print(f"{args.out}/{name}.jsonl: {n} tasks, {changed} changed; every one still fails")
    finally:
        verifier.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
