"""How far a candidate state got, as the tests see it: the repair engine's best-first search
(dsl/repair.py) orders its frontier by these; among states that pass as many tests, it expands one
that behaves as no state before did ahead of one that behaves like an earlier state."""
from __future__ import annotations

import re

from .verifier import VerifyResult


def fitness(r: VerifyResult) -> int:
    """How far a state is from a fix: syntax error < error loading < each test passing counts 4,
    each failing one that fails by assertion (the code ran) 1."""
    if r.code_status == "syntax":
        return 0
    if r.code_status != "ok":
        return 1
    return 2 + 4 * r.tests_passed + sum(t.status == "fail" for t in r.tests)


def reach(r: VerifyResult) -> int:
    """How far the code ran: the furthest line an error came from (0: none). Of two states that fail
    alike, the one raising later got past what stopped the other (a stray line deleted)."""
    lines = [t.user_line for t in r.tests if t.status == "error"]
    if r.code_status == "error":  # the module itself raised: the feedback names the line
        lines += [int(n) for n in re.findall(r"\(line (\d+)\)", r.feedback)]
    return max(lines, default=0)


def behaviour(r: VerifyResult) -> tuple:
    """What the tests saw of a state: which passed and which failed alike (the same errors from the
    same lines, the same wrong values). Most edits of a failing function change none of it (a line
    the tests never run, a constant that does not matter); expanding each of them wasted the chains'
    budget on MBPP (the `return` a 3-edit fix needed came after 170 such states)."""
    return r.code_status, tuple((t.status, t.error_type, t.got, t.user_line) for t in r.tests)
