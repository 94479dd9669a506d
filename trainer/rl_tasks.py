"""RL tasks: harder than SFT's, and only those the starting model solves sometimes.

`candidates(n, seed, ...)` breaks MBPP `train` + `validation` solutions (never `test`) with
several edits at once, drawn mostly from the token-level operators that look like real slips
(operator, comparison, off-by-one constant, swapped or misspelled name) plus line edits, and keeps
programs whose tests fail. `probe(tasks, solves, group)` runs a group of rollouts of the starting
model on each and keeps the tasks it solves in some but not all of them: a group with no reward
variance gives GRPO nothing to learn from.
"""
from __future__ import annotations

import random
from typing import Callable

from dsl import Task, Verifier, load_mbpp

from .corrupt import corrupt
from .data import _seed, line_pool

# token-level slips twice as likely as whole-line edits
NATURAL_OPERATORS = ("operator", "comparison", "constant", "swap_variable", "misspell") * 2 + (
    "delete_line", "insert_line", "replace_line")


def candidates(n: int, seed: int = 1, min_edits: int = 2, max_edits: int = 5,
               verifier: Verifier | None = None) -> list[Task]:
    """Up to `n` failing multi-edit corruptions of MBPP train + validation, one per problem per round."""
    train = load_mbpp(["train", "validation"])
    pool = line_pool(train)
    v = verifier or Verifier()
    out: list[Task] = []
    seen: set[tuple[str, str]] = set()
    for rnd in range(4):
        for task in sorted(train, key=lambda t: _seed(seed, "rl-order", rnd, t.id)):
            if len(out) >= n:
                return out
            rng = random.Random(_seed(seed, "rl", rnd, task.id))
            broken = corrupt(task.code, rng, rng.randint(min_edits, max_edits), pool, NATURAL_OPERATORS)
            if broken is None or (task.id, broken[0]) in seen:
                continue
            if v.verify(broken[0], task.tests, task.timeout_s).passed:
                continue
            seen.add((task.id, broken[0]))
            out.append(Task(f"{task.id}#rl{rnd}", broken[0], task.tests, task.entry_point, task.description,
                            task.timeout_s, task.split))
    return out


def probe(tasks: list[Task], solves: Callable[[Task], int], group: int,
          progress: Callable[[int, int, int], None] | None = None) -> tuple[list[Task], dict]:
    """The tasks solved in some but not all of `group` tries, and counts of the rest; `solves(task)`
    plays the group's tries (together, when batched) and says how many solved."""
    kept, never, always = [], 0, 0
    for i, task in enumerate(tasks, 1):
        wins = solves(task)
        if wins == 0:
            never += 1
        elif wins == group:
            always += 1
        else:
            kept.append(task)
        if progress is not None:
            progress(i, len(tasks), len(kept))
    return kept, {"candidates": len(tasks), "kept": len(kept), "never_solved": never, "always_solved": always}
