"""The verifier: runs code against tests in the sandbox and says what happened, per test.

A *test* is each top-level `assert` of the tests source, each top-level `check(...)` call, and
each argument-less function whose name starts with `test` (pytest's rule; called by the driver
after the top level has run). Every other top-level
statement is setup, run in order; like the script `code + "\\n\\n" + tests` would, the top level stops
at the first failing statement. The tests are counted here, from the source, before anything runs:
code that deletes, skips or short-circuits tests cannot lower the count, so it cannot pass.

`passed` is true only when the code ran, every top-level statement ran, and every test passed.

Feedback (what the model sees under `***`) is one of, in this order of precedence:

    SyntaxError at line 3: invalid syntax
    Error running the code: NameError: name 'x' is not defined (line 2)
    Tests: 2/3 pass.                         <- then the first failing test:
    Failed: assert add(1, 2) == 3            (the test's source, first line, or `test_name()`)
    Got: -1                                  (for `assert a == b`: both sides' reprs)
    Expected: 3
    -- or --
    ZeroDivisionError: division by zero (line 4)   (exception, message, user-code line)
    -- or --
    Timeout after 5s (or: Process ended: exit code 0)
    All 3 tests pass.

A failing test function shows, after `Failed: test_name()`, the line of it that failed; its
`assert a == b` statements report Got/Expected too (the sandbox rewrites them to carry both sides):

    Failed: test_add()
    assert add(1, 2) == 3
    Got: -1
    Expected: 3

The language server's pytest check (`server/workspace_check.py`) writes the same form, so the
model reads a workspace's tests as it read them in training.
"""
from __future__ import annotations

import ast
import functools
import threading
from dataclasses import dataclass, field

from .fork_server import ForkServer, run_fresh
from .sandbox import Limits
from .sandbox_child import is_eq_compare

DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TestResult:
    index: int
    source: str  # what the feedback shows for this test
    status: str  # pass | fail | error | timeout | crashed | not run
    error_type: str = ""
    message: str = ""
    user_line: int = 0  # line of the code under test where the exception came from, 0 if none
    got: str = ""
    expected: str = ""
    test_line: int = 0  # line of the tests source that raised (inside a test function), 0 if none


@dataclass
class VerifyResult:
    passed: bool
    tests_passed: int
    tests_total: int
    feedback: str
    tests: list[TestResult] = field(default_factory=list)
    code_status: str = "ok"  # ok | syntax | error | crashed | invalid
    timed_out: bool = False
    isolation: str = "bwrap"
    wall_s: float = 0.0
    output: str = ""  # what the code printed (capped)
    # per test, in order: the lines of the code under test it ran, where the verifier recorded them
    # (the warm workspace runner does, on the first check): a spectrum for localization at no extra run
    coverage: list[frozenset[int]] | None = None


@dataclass(frozen=True)
class Plan:
    steps: list[dict]
    shown: list[str]  # per step: how the feedback names it
    test_steps: list[int]  # indices of the steps that are tests
    rows: tuple[str, ...] = ()  # the tests source's lines, to show the failing line of a test function


class PlanError(ValueError):
    pass


@functools.lru_cache(maxsize=256)  # an episode verifies against the same tests every turn
def plan_tests(tests: str) -> Plan:
    """Split a tests source into setup and test steps for the driver (see module docstring).
    The plan is cached and shared: treat it as read-only."""
    try:
        tree = ast.parse(tests, "<tests>")
    except SyntaxError as e:
        raise PlanError(f"the tests do not parse: {e.msg} (tests line {e.lineno})") from None
    except (ValueError, RecursionError, MemoryError) as e:
        raise PlanError(f"the tests do not parse: {type(e).__name__} {e}".rstrip()) from None
    rows = tests.encode("utf-8").split(b"\n")  # ast columns are UTF-8 byte offsets

    def segment(node: ast.AST, start_line: int | None = None) -> str:
        l1, c1 = (start_line, 0) if start_line else (node.lineno, node.col_offset)
        l2, c2 = node.end_lineno, node.end_col_offset
        if l1 == l2:
            return rows[l1 - 1][c1:c2].decode("utf-8", "replace")
        parts = [rows[l1 - 1][c1:], *rows[l1:l2 - 1], rows[l2 - 1][:c2]]
        return b"\n".join(parts).decode("utf-8", "replace")

    steps: list[dict] = []
    shown: list[str] = []
    tests_idx: list[int] = []
    calls: list[tuple[str, int]] = []
    for stmt in tree.body:
        start = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])
        src = segment(stmt, start)
        first = _clip(src.split("\n", 1)[0], 200)
        if isinstance(stmt, ast.Assert):
            test = stmt.test
            if is_eq_compare(test):
                left, right = test.left, test.comparators[0]
                # both sides evaluated apart, so a failure can say what it got and expected
                steps.append({"kind": "assert_eq", "line": left.lineno, "src": src,
                              "left": f"({segment(left)})", "right": f"({segment(right)})"})
            else:
                steps.append({"kind": "assert", "line": start, "src": src})
            tests_idx.append(len(steps) - 1)
            shown.append(first)
        elif (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
              and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id == "check"):
            steps.append({"kind": "check", "line": start, "src": src})
            tests_idx.append(len(steps) - 1)
            shown.append(first)
        else:
            step = {"kind": "setup", "line": start, "src": src}
            # pytest's rule: functions whose name starts with "test" (test_x, test1, ...)
            if isinstance(stmt, ast.FunctionDef) and stmt.name.startswith("test") and not stmt.args.args:
                step["defines"] = [stmt.name]
                calls.append((stmt.name, stmt.lineno))
            steps.append(step)
            shown.append(f"tests line {start}: {first}")
    for name, line in calls:
        steps.append({"kind": "call", "name": name, "line": line})
        tests_idx.append(len(steps) - 1)
        shown.append(f"{name}()")
    if not tests_idx:
        raise PlanError("no tests found: write top-level asserts, check(...) calls, or test functions")
    return Plan(steps, shown, tests_idx, tuple(tests.split("\n")))


def _clip(text: str, budget: int) -> str:
    return text if len(text) <= budget else text[: budget - 1] + "…"


class Verifier:
    """Runs `code` against `tests` in the sandbox. `mode="fork"` (default) uses a warm fork
    server; `mode="fresh"` starts a new sandboxed interpreter per run (slower, the fallback)."""

    def __init__(self, mode: str = "fork", limits: Limits | None = None) -> None:
        if mode not in ("fork", "fresh"):
            raise ValueError(f"mode must be 'fork' or 'fresh', not {mode!r}")
        self.mode = mode
        self.limits = limits or Limits(wall_s=DEFAULT_TIMEOUT_S)
        self._server: ForkServer | None = None
        self._lock = threading.Lock()

    def verify(self, code: str | bytes, tests: str | bytes, timeout_s: float | None = None) -> VerifyResult:
        try:
            code, tests = _text(code, "code"), _text(tests, "tests").replace("\r\n", "\n")
            plan = plan_tests(tests)
        except PlanError as e:
            return VerifyResult(False, 0, 0, f"Cannot verify: {e}.", code_status="invalid")
        limits = self.limits if timeout_s is None else Limits(
            wall_s=float(timeout_s), mem_mb=self.limits.mem_mb, out_bytes=self.limits.out_bytes)
        request = {"code": code, "plan": plan.steps}
        if self.mode == "fresh":
            raw = run_fresh(request, limits)
        else:
            with self._lock:
                if self._server is None:
                    self._server = ForkServer()
            raw = self._server.run(request, limits)
        return interpret(raw, plan, limits)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


def _text(value: str | bytes, what: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise PlanError(f"the {what} is not valid UTF-8 (byte {e.start})") from None
    if not isinstance(value, str):
        raise PlanError(f"the {what} must be text, not {type(value).__name__}")
    return value


def interpret(raw: dict, plan: Plan, limits: Limits) -> VerifyResult:
    """Turn the driver's records into per-test results, `passed`, and the feedback text."""
    records = [r for r in raw.get("records", []) if _well_formed(r)]
    code = next((r for r in records if r[0] == "code"), None)
    ended = any(r[0] == "end" for r in records)
    started = {r[1] for r in records if r[0] == "start"}
    done = {r[1]: r for r in records if r[0] in ("test", "setup")}
    timed_out = bool(raw.get("timed_out"))
    results: list[TestResult] = []
    for idx in plan.test_steps:
        r = done.get(idx)
        if r is not None:
            results.append(TestResult(idx, plan.shown[idx], str(r[2]), str(r[3]), str(r[4]), int(r[5]), str(r[6]), str(r[7]),
                                      int(r[8])))
        elif idx in started:
            results.append(TestResult(idx, plan.shown[idx], "timeout" if timed_out else "crashed"))
        else:
            results.append(TestResult(idx, plan.shown[idx], "not run"))
    setup_error = next((done[i] for i in sorted(done) if done[i][0] == "setup" and done[i][2] != "pass"), None)
    hung_setup = next((i for i in sorted(started) if i not in done and plan.steps[i]["kind"] == "setup"), None)
    n_pass = sum(t.status == "pass" for t in results)
    code_status = "crashed" if code is None else str(code[1])
    passed = (code_status == "ok" and ended and setup_error is None and n_pass == len(results)
              and not timed_out and "infra_error" not in raw)
    base = dict(tests_passed=n_pass, tests_total=len(results), tests=results, code_status=code_status,
                timed_out=timed_out, isolation=str(raw.get("isolation", "")), wall_s=float(raw.get("wall_s", 0.0)),
                output=str(raw.get("output", "")))
    if passed:
        return VerifyResult(True, feedback=f"All {len(results)} tests pass.", **base)
    return VerifyResult(False, feedback=_feedback(raw, code, results, setup_error, hung_setup, plan, limits), **base)


_SHAPES = {"end": (), "start": (int,), "test": (int, str, str, str, int, str, str, int),
           "setup": (int, str, str, str, int, str, str, int)}


def _well_formed(rec: tuple) -> bool:
    """Records come from our driver, but check their shape anyway: a malformed one is ignored."""
    if rec[0] == "code":
        shape = (str, str, str, int, int) if len(rec) == 6 else (str, str, str, int)
    else:
        shape = _SHAPES.get(rec[0])
    return (shape is not None and len(rec) == len(shape) + 1
            and all(type(v) is t for v, t in zip(rec[1:], shape)))


def _feedback(raw, code, results, setup_error, hung_setup, plan, limits) -> str:
    if "infra_error" in raw:
        return f"Cannot verify: {raw['infra_error']}."
    timeout = f"Timeout: still running after {limits.wall_s:g}s"
    if code is None:
        if raw.get("timed_out"):
            return f"{timeout} while loading the code."
        return f"The code ended the process before the tests ran (exit code {raw.get('exit_code')})."
    if code[1] == "syntax":
        where = f" at line {code[4]}" if code[4] else ""
        return f"{code[2]}{where}: {code[3]}"
    if code[1] != "ok":
        return f"Error running the code: {_exception(code[2], code[3], code[4])}"
    n_pass, total = sum(t.status == "pass" for t in results), len(results)
    head = f"Tests: {n_pass}/{total} pass."
    if setup_error is not None:
        r = setup_error
        return f"{head}\nError in {plan.shown[r[1]]}\n{_exception(r[3], r[4], r[5])}"
    if hung_setup is not None:
        return f"{head}\n{timeout} in {plan.shown[hung_setup]}"
    bad = next((t for t in results if t.status != "pass"), None)
    if bad is None:  # all tests pass but the run did not finish cleanly
        return f"{head}\nThe process ended before the tests finished (exit code {raw.get('exit_code')})."
    lines = [head, f"Failed: {bad.source}"]
    if plan.steps[bad.index]["kind"] == "call" and 0 < bad.test_line <= len(plan.rows):
        lines.append(_clip(plan.rows[bad.test_line - 1].strip(), 200))  # the test function's failing line
    if bad.status == "timeout":
        lines.append(f"{timeout}.")
    elif bad.status == "crashed":
        lines.append(f"The process ended during this test (exit code {raw.get('exit_code')}).")
    elif bad.status == "not run":
        lines.append("Not run.")
    elif bad.got or bad.expected:
        lines += [f"Got: {bad.got}", f"Expected: {bad.expected}"]
    else:
        lines.append(_exception(bad.error_type, bad.message, bad.user_line))
    return "\n".join(lines)


def _exception(etype: str, message: str, user_line: int) -> str:
    text = f"{etype}: {message}" if message else etype
    return f"{text} (line {user_line})" if user_line else text
