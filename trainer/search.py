"""Search over single-line edits, each checked by the tests: the enumerative baseline, and the
same search with the model choosing the order.

    python -m trainer eval --baseline enumerative --tasks ../shared/bench/quixbugs.jsonl --budget 100
    python -m trainer eval --mode ranked --tasks ../shared/bench/quixbugs.jsonl --budget 100

Both try the same edits (`mutations`) until one passes the tests or --budget test runs are spent:

* `enumerative`: in a fixed order, line by line: arithmetic and comparison operators, integer
  constants ±1, and/or, True/False, min/max; then deleting each line; then each name the code
  binds (a parameter, an assigned variable, a function) swapped for another such name.
* `ranked` (a model): each edit written as the DSL command that makes it, scored by the model as
  its reply to the task's first tool state (the state a CoE episode starts from: code, ***, test
  feedback), and tried best first. The score is the mean log-probability per token, as Chen et al.
  (2021) rank code samples: the sum would favour short commands (`DELL n`) for being short. The
  first tool state costs one test run of the budget; the model's scoring costs none.

The edit kinds are the inverses of the SFT data's token-level corruptions (trainer/corrupt.py),
fixed before any result on an evaluation set was seen. Swaps are limited to the names the code
binds (any identifier for any other made about 2,800 edits per QuixBugs task, these about 230):
chosen by count, not by what they fix.
"""
from __future__ import annotations

import ast
import re

from dsl import Command, EditorState, Episode, Task, Verifier, line_edit, new_conversation

from .corrupt import ARITH, COMPARE, NUMBER, operator_spans

# a mutation that loops forever would burn the task's whole timeout on every try
TRY_TIMEOUT_S = 2.0
_WORD = re.compile(r"(?<![\w.'\"])[A-Za-z_]\w*")


def bound_names(code: str) -> list[str]:
    """The names `code` binds: parameters, assigned variables, functions and classes (sorted)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return sorted(names)


def _candidates(state: EditorState, code: str):
    """Every edit of every kind, in the enumerative order (the module docstring), repeats included."""
    for n, line in enumerate(state.lines, 1):
        if not line.strip():
            continue
        for a, b, tok in operator_spans(line, ARITH + COMPARE):
            for new in (ARITH if tok in ARITH else COMPARE):
                if new != tok:
                    yield line_edit(n, line, line[:a] + new + line[b:])
        for m in NUMBER.finditer(line):
            for d in (1, -1):
                if int(m.group()) + d >= 0:
                    yield line_edit(n, line, line[: m.start()] + str(int(m.group()) + d) + line[m.end():])
        for a, b in (("and", "or"), ("or", "and"), ("True", "False"), ("False", "True"), ("min", "max"), ("max", "min")):
            if f" {a}" in line:
                yield line_edit(n, line, line.replace(f" {a}", f" {b}", 1))
    if len(state.lines) > 1:
        for n, line in enumerate(state.lines, 1):
            if line.strip() and not line.lstrip().startswith(("def ", "class ")):
                yield Command("DELL", n)
    names = bound_names(code)
    for n, line in enumerate(state.lines, 1):
        if line.lstrip().startswith(("def ", "class ")):
            continue
        for m in _WORD.finditer(line.split("#", 1)[0]):
            if m.group() in names:  # bound names are never keywords
                for new in names:
                    if new != m.group():
                        yield line_edit(n, line, line[: m.start()] + new + line[m.end():])


def mutations(code: str) -> list[Command]:
    """Single-line edits of `code` in the enumerative order: each applies, and each leaves code
    no earlier one left (so no test run is spent twice on the same program)."""
    state = EditorState.from_code(code)
    seen, out = {code}, []
    for cmd in _candidates(state, code):
        new = state.apply(cmd)
        if isinstance(new, EditorState) and new.to_code() not in seen:
            seen.add(new.to_code())
            out.append(cmd)
    return out


def ranked(task: Task, commands: list[Command], model, verifier: Verifier) -> list[Command]:
    """`commands` by the model's mean log-probability per token, best first (ties keep their order)."""
    view = Episode(task, verifier=verifier).reset()
    scores = model.score(new_conversation(task, view), [str(c) for c in commands])
    means = [sum(s) / len(s) for s in scores]
    order = sorted(range(len(commands)), key=lambda i: -means[i])
    return [commands[i] for i in order]


def try_in_order(task: Task, commands: list[Command], verifier: Verifier, budget: int) -> dict:
    """One episode's result: `commands` applied one at a time to the task's code, each checked by
    the tests, until one passes or `budget` test runs are spent (`turns` = test runs)."""
    state, runs, fix = EditorState.from_code(task.code), 0, None
    for cmd in commands[:budget]:
        runs += 1
        if verifier.verify(state.apply(cmd).to_code(), task.tests, min(task.timeout_s or 10.0, TRY_TIMEOUT_S)).passed:
            fix = str(cmd)
            break
    return {"solved": fix is not None, "turns": runs, "invalid": 0, "tokens": 0, "tests_passed": 0,
            "solved_at": runs if fix else None, "fix": fix, "candidates": len(commands)}


def run_search(tasks: list[Task], verifier: Verifier, budget: int, progress, model=None) -> list[dict]:
    """Per-task results of the search: in the fixed order, or (`model` given) in the model's."""
    if budget < 1:
        raise ValueError("--budget takes a number of test runs, 1 or more")
    out = []
    for n, task in enumerate(tasks, 1):
        commands = mutations(task.code)
        if model is not None:
            commands = ranked(task, commands, model, verifier)
        episode = try_in_order(task, commands, verifier, budget - (model is not None))
        if model is not None:  # the first tool state the model read was a test run too
            episode["turns"] += 1
            episode["solved_at"] = episode["solved_at"] and episode["solved_at"] + 1
        out.append({"id": task.id, "episodes": [episode]})
        progress(n, len(tasks), out)
    return out
