"""Shrinking a fix to the edits it needs: a plausible fix found by a chain or a model episode often
carries edits that do no work (a harmless line rewritten on the way); the user should review only
the ones that do. Plain Python: the repair engine (dsl/repair.py) hands in the test run."""
from __future__ import annotations

import difflib
from typing import Callable


def changed_blocks(start: list[str], now: list[str]) -> list[tuple[int, int, int, int]]:
    """(i1, i2, j1, j2) per changed block of `now` against `start`; a block of lines replaced one
    for one counts line by line (each line can be undone alone)."""
    ops = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=start, b=now, autojunk=False).get_opcodes():
        if tag == "replace" and i2 - i1 == j2 - j1:
            ops += [(i1 + d, i1 + d + 1, j1 + d, j1 + d + 1) for d in range(i2 - i1)]
        elif tag != "equal":
            ops.append((i1, i2, j1, j2))
    return ops


def smallest(start: str, fix: str, passes: Callable[[str], bool | None]) -> str:
    """`fix` with every changed block it does not need undone, one block at a time, as long as
    `passes(code)` says the result still passes (None: no more test runs to spend, or not worth one)."""
    first = start.split("\n")
    code, changed = fix, True
    while changed:
        changed = False
        now = code.split("\n")
        ops = changed_blocks(first, now)
        if len(ops) < 2:
            break
        for i1, i2, j1, j2 in ops:
            trial = "\n".join(now[:j1] + first[i1:i2] + now[j2:])
            if passes(trial):
                code, changed = trial, True
                break
    return code
