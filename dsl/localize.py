"""Fault localization: which lines of the code to suspect first, before anything is proposed.

Spectrum-based (Ochiai): each test runs alone against an instrumented copy of the code that
reports the first time each line runs, so each test yields (passed?, lines it ran). A line's
suspicion is

    ochiai(line) = failed(line) / sqrt(failed_total * (failed(line) + passed(line)))

the share of failing tests that ran it, discounted by the passing ones that ran it too. Lines no
failing test ran score 0. Then two cheap signals break the ties that a small test suite leaves
(MBPP has three tests; they often all fail): the line a failing test's exception came from
(`user_line`, the traceback's line in the code) gets +0.5, and a line the error names undefined
gets +0.5; `def`/`class` lines are left out (they run whenever the module loads); among equals, lines with more operators and names come first (the bug is in a
computation more often than in a bare `else:`), then later lines (the data flow ends in the
return). `rank(...)` returns every line, most suspect first, with its score.

The instrumented code is the user's own code, run in the same sandbox; it can only lie about
where it has been, which costs ranking quality, never correctness: a fix is always judged by the
real tests on the real code.
"""
from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from typing import Callable

from .audit import parse_python
from .verifier import VerifyResult, plan_tests

HIT = "\x00coedit-hit "
_HIT_RE = re.compile(r"\x00coedit-hit (\d+)")
MAX_TESTS = 16  # single-test runs at most (all failing tests first, then passing ones)
_HIT_DEF = (f"def __coedit_hit(n, _seen=set(), _print=print):\n"
            f"    if n not in _seen:\n        _seen.add(n)\n        _print({HIT!r} + str(n), flush=True)\n")


@dataclass
class Spectrum:
    runs: list[tuple[bool, set[int]]]  # per test run alone: (passed, lines it ran)
    test_runs: int  # what it cost


class _Hits(ast.NodeTransformer):
    """Put `__coedit_hit(<line>)` before every statement of every block."""

    def _block(self, body: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for stmt in body:
            self.visit(stmt)
            is_future = isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"
            if not is_future:
                call = ast.Expr(ast.Call(ast.Name("__coedit_hit", ast.Load()), [ast.Constant(stmt.lineno)], []))
                out.append(ast.copy_location(call, stmt))
            out.append(stmt)
        return out

    def generic_visit(self, node: ast.AST) -> ast.AST:
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                setattr(node, name, self._block(block))
        for handler in getattr(node, "handlers", []):
            self.generic_visit(handler)
        for case in getattr(node, "cases", []):
            case.body = self._block(case.body)
        return node


def instrument(code: str) -> str | None:
    """`code` reporting each line the first time it runs (stdout markers), or None if it does not parse."""
    tree = parse_python(code)
    if tree is None:
        return None
    futures = [s for s in tree.body if isinstance(s, ast.ImportFrom) and s.module == "__future__"]
    rest = ast.Module([s for s in tree.body if s not in futures], [])
    _Hits().generic_visit(rest)
    body = ast.unparse(ast.fix_missing_locations(rest))
    head = ast.unparse(ast.Module(futures, [])) + "\n" if futures else ""
    return head + _HIT_DEF + body + "\n"


def single_tests(tests: str) -> list[str]:
    """One tests source per test (plan_tests' rule): the setup statements, then that test alone."""
    plan = plan_tests(tests)
    tree = ast.parse(tests)
    steps = tree.body
    calls = [s for s in plan.steps if s["kind"] == "call"]
    test_stmts = [i for i, s in enumerate(plan.steps[: len(steps)]) if s["kind"] in ("assert", "assert_eq", "check")]
    defines = {s["name"] for s in calls}

    def source(keep: ast.stmt | None, call: str | None) -> str:
        out = []
        for i, stmt in enumerate(steps):
            is_test_fn = isinstance(stmt, ast.FunctionDef) and stmt.name in defines
            if i in test_stmts or is_test_fn:
                if stmt is keep or (is_test_fn and stmt.name == call):
                    out.append(stmt)
                continue
            out.append(stmt)
        return ast.unparse(ast.Module(out, []))
    return [source(steps[i], None) for i in test_stmts] + [source(None, c["name"]) for c in calls]


def spectrum(code: str, tests: str, run: Callable[[str, str], VerifyResult], first: VerifyResult | None = None,
             limit: int = MAX_TESTS) -> Spectrum | None:
    """Each test run alone on the instrumented code (`run(code, tests)`): what it passed and ran.
    The failing tests (per `first`, the whole suite's result) go first; `limit` runs at most."""
    marked = instrument(code)
    if marked is None:
        return None
    try:
        sources = single_tests(tests)
    except (SyntaxError, ValueError):
        return None
    order = list(range(len(sources)))
    if first is not None and len(first.tests) == len(sources):
        order.sort(key=lambda i: first.tests[i].status == "pass")
    runs = []
    for i in order[:limit]:
        res = run(marked, sources[i])
        runs.append((res.passed, {int(m) for m in _HIT_RE.findall(res.output)}))
    return Spectrum(runs, len(runs))


def ochiai(spec: Spectrum) -> dict[int, float]:
    failed_total = sum(not ok for ok, _ in spec.runs)
    if not failed_total:
        return {}
    fails: dict[int, int] = {}
    passes: dict[int, int] = {}
    for ok, lines in spec.runs:
        for n in lines:
            (passes if ok else fails)[n] = (passes if ok else fails).get(n, 0) + 1
    return {n: f / math.sqrt(failed_total * (f + passes.get(n, 0))) for n, f in fails.items()}


def _weight(line: str) -> int:
    """How much computation a line holds: operators, calls and names (the tie-breaker)."""
    return len(re.findall(r"[-+*/%<>=!&|^~]+|\b(?:and|or|not|in|is)\b|\w+\(|[A-Za-z_]\w*", line.split("#", 1)[0]))


def _string_lines(code: str) -> set[int]:
    """Lines that hold only a bare string statement (docstrings) or a comment."""
    out = {n for n, text in enumerate(code.split("\n"), 1) if text.lstrip().startswith("#")}
    tree = parse_python(code)
    for node in ast.walk(tree) if tree else ():
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            out |= set(range(node.lineno, node.end_lineno + 1))
    return out


def rank(code: str, spec: Spectrum | None, first: VerifyResult | None, undefined: set[str] = frozenset()) -> list[tuple[int, float]]:
    """Every line of `code` (1-based) with its suspicion, most suspect first (module docstring)."""
    lines = code.split("\n")
    docs = _string_lines(code)
    scores = ochiai(spec) if spec else {}
    error_lines = {t.user_line for t in (first.tests if first else []) if t.status != "pass" and t.user_line}
    if first is not None and first.code_status in ("syntax", "error"):
        m = re.search(r"\(line (\d+)\)|at line (\d+)", first.feedback)
        if m:
            error_lines.add(int(m.group(1) or m.group(2)))
    out = []
    for n, text in enumerate(lines, 1):
        if not text.strip():
            continue
        if text.lstrip().startswith(("def ", "async def ", "class ", "@")) or n in docs:
            continue  # headers run whenever the module loads (every test "covers" them); docstrings do nothing
        s = scores.get(n, 0.0) + (0.5 if n in error_lines else 0.0)
        if undefined and any(re.search(rf"\b{re.escape(u)}\b", text) for u in undefined):
            s += 0.5
        out.append((n, s, _weight(text)))
    out.sort(key=lambda x: (-x[1], -x[2], -x[0]))
    return [(n, s) for n, s, _ in out]
