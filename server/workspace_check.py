"""The verifier for a real workspace: the project's own pytest tests against an edited function.

`WorkspaceCheck(...)(function_code)` (the function as the engine sees it, `Target.view`: a method
without its class's indentation) splices the edited function into the file, and runs the
selected tests with pytest, under the workspace's own interpreter (so its dependencies import), in
the `dsl` sandbox: the workspace read-only with the edited file laid over it (`dsl.Job` with
`workspace` and `overlays`). Nothing in the workspace is written. The answer is a
`dsl.VerifyResult` whose feedback has the `dsl` verifier's form for a failing test function (see
`dsl/verifier.py`), line numbers relative to the function as the model sees it: a model reads a
workspace's tests as it read them in training. A syntax error is reported without running pytest.
"""
from __future__ import annotations

import ast
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from dsl import Job, Limits, TestResult, VerifyResult, is_eq_compare, run_job
from dsl.task_check import run_limit

from .discovery import Tests
from .target import Target
from .warm_runner import WarmRunner

FAILURE_BUDGET = 600  # characters of one failure's text shown
SLOWER = 10  # a check may take this many times the first check's seconds...
MIN_LIMIT_S = 3.0  # ...but at least this (a fresh pytest's start varies)


@dataclass
class WorkspaceCheck:
    root: Path
    file: Path
    source: str  # the document as it was when the fix started
    target: Target
    tests: Tests
    interpreter: str
    timeout_s: float = 30.0
    warm: bool = True  # checks through a warm pytest (warm_runner.py) where it can be trusted
    checks: int = 0
    warm_checks: int = 0  # of them, answered by the warm runner
    _warm: WarmRunner | None = None
    _first_s: dict[str, float] = field(default_factory=dict)  # seconds of the first check, warm and fresh
    deadline: float = float("inf")  # `time.monotonic()` no check may outlast: the repair engine sets its fix's end

    def splice(self, function_code: str) -> str:
        """The document with the function (in the engine's view, `Target.view`) put back."""
        return self.target.splice(self.source, self.target.from_view(function_code))

    def __call__(self, function_code: str) -> VerifyResult:
        new_source = self.splice(function_code)
        function_code = self.target.from_view(function_code)  # as the file has it, from here on
        try:
            ast.parse(new_source)
        except SyntaxError as e:
            line = (e.lineno or 0) - self.target.start
            where = f" at line {line}" if 1 <= line <= len(self.target.lines) + 5 else ""
            return VerifyResult(False, 0, len(self.tests.node_ids), f"SyntaxError{where}: {e.msg}", code_status="syntax")
        rel = os.path.relpath(self.file, self.root)
        runner = self._runner()
        limit = self.limit("warm")
        got = runner.run(function_code, limit, coverage=not self.checks) if runner else None
        self.checks += 1
        if got is not None:
            self.warm_checks += 1
            res, coverage = got
            result = self._interpret(res, rel, limit)
            if coverage is not None:
                result.coverage = [frozenset(n for n in (self._line(k) for k in coverage.get(node, ())) if n)
                                   for node in runner.node_ids]
        else:
            limit = self.limit("fresh")
            job = Job(self._pytest_argv() + self.tests.node_ids, workspace=str(self.root),
                      overlays={rel: new_source.encode()}, interpreter=self.interpreter,
                      limits=Limits(wall_s=limit, mem_mb=4096))
            result = self._interpret(run_job(job, collect=["report.xml"]), rel, limit)
        path = "warm" if got is not None else "fresh"
        if path not in self._first_s and not result.timed_out:
            self._first_s[path] = result.wall_s
        return result

    def limit(self, path: str) -> float:
        """Seconds one check may take: `timeout_s`, and once a check went this path (warm or fresh)
        at most SLOWER times what that took (at least MIN_LIMIT_S). A candidate that loops would
        otherwise spend a whole Fix's clock on one check; one that slow is not the fix. None outlasts
        `deadline`, as `dsl.TaskCheck`'s runs do not."""
        limit = self.timeout_s if path not in self._first_s else \
            min(self.timeout_s, max(MIN_LIMIT_S, SLOWER * self._first_s[path]))
        return run_limit(limit, self.deadline)

    def _pytest_argv(self) -> list[str]:
        argv = ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=short", "--no-header",
                "-o", "junit_family=xunit1", "--junitxml={workdir}/report.xml"]
        return argv + (["--doctest-modules"] if self.tests.doctest_module else [])

    def _runner(self) -> WarmRunner | None:
        """The warm runner, started on the first check (one pytest start, as a fresh check costs)."""
        if self.warm and self._warm is None:
            rel = os.path.relpath(self.file, self.root)
            self._warm = WarmRunner(self.root, rel, self.source, self.target,
                                    self._pytest_argv()[3:] + self.tests.node_ids, self.interpreter)
            self._warm.start()
        return self._warm if self._warm is not None and self._warm.usable else None

    def close(self) -> None:
        if self._warm is not None:
            self._warm.close()

    def _interpret(self, res, rel: str, limit: float) -> VerifyResult:
        total = len(self.tests.node_ids)
        if res.timed_out:
            return VerifyResult(False, 0, total, f"Timeout: the tests ran longer than {limit:.3g}s.",
                                timed_out=True, isolation=res.isolation, wall_s=res.wall_s)
        if "No module named pytest" in res.stderr + res.stdout:
            return VerifyResult(False, 0, total, f"Cannot verify: pytest is not installed for {self.interpreter}.",
                                code_status="invalid", isolation=res.isolation)
        report = res.workdir_files.get("report.xml")
        if report is None:
            tail = (res.stdout + res.stderr).strip()[-FAILURE_BUDGET:]
            return VerifyResult(False, 0, total, f"Cannot verify: pytest did not run the tests.\n{tail}",
                                code_status="invalid", isolation=res.isolation)
        results = []
        for i, case in enumerate(ET.fromstring(report).iter("testcase")):
            name = case.get("name", "?")
            bad = next((c for c in case if c.tag in ("failure", "error")), None)
            skipped = next((c for c in case if c.tag == "skipped"), None)
            if bad is None and skipped is None:
                results.append(TestResult(i, name, "pass"))
            else:
                node = bad if bad is not None else skipped
                status = "fail" if node.tag == "failure" else ("not run" if node is skipped else "error")
                results.append(TestResult(i, name, status, message=self._failure(name, node, rel)))
        # A skipped test (a doctest whose examples are all +SKIP, a skip mark) judges nothing:
        # it is neither a pass nor a failure, and the counts leave it out.
        judged = [r for r in results if r.status != "not run"]
        passed = sum(r.status == "pass" for r in judged)
        ok = res.returncode == 0 and judged and passed == len(judged)
        if ok:
            feedback = f"All {len(judged)} tests pass."
        elif results and not judged:
            feedback = f"All {len(results)} tests were skipped: nothing judges the function."
        elif not results:
            tail = (res.stdout + res.stderr).strip()[-FAILURE_BUDGET:]
            feedback = f"Error collecting the tests:\n{self._relative(tail, rel)}"
        else:
            bad = next(r for r in judged if r.status != "pass")
            feedback = f"Tests: {passed}/{len(judged)} pass.\n{bad.message}"
        return VerifyResult(bool(ok), passed, len(judged) or total, feedback, tests=results, isolation=res.isolation,
                            wall_s=res.wall_s, output=res.stdout[-FAILURE_BUDGET:])

    def _failure(self, name: str, node: ET.Element, rel: str) -> str:
        """A failed test as the `dsl` verifier reports a failing test function (`Failed: test_x()`, its
        failing line, then Got/Expected or `Error: message (line N)`), read from pytest's short
        traceback; what does not fit that shape is shown as pytest wrote it."""
        message, text = node.get("message", ""), node.text or ""
        as_pytest_wrote_it = f"{message}\n{text}"
        shown = f"{name}()" if name.isidentifier() else name
        frames = [(m.group(1), int(m.group(2)), m.group(3), m.group(4)) for m in _FRAME.finditer(text)]
        in_target = [i for i, f in enumerate(frames) if f[0] == rel and self._line(f[1])]
        test_fn = name.split("[", 1)[0]
        before = [f for f in (frames[: in_target[0]] if in_target else frames) if f[2] == test_fn]
        if node.tag == "skipped" or not before:  # not a failure inside the test function (collection, fixture)
            return f"Failed: {shown}\n{_clip(self._relative(as_pytest_wrote_it, rel).strip())}"
        test_line = before[-1][3].strip()
        first = message.strip().split("\n", 1)[0]
        out = [f"Failed: {shown}", test_line]
        if first.startswith("assert "):  # pytest's rewritten assert: `assert <got> == <expected>`
            sides = first[len("assert "):].split(" == ")
            if len(sides) == 2 and _is_assert_eq(test_line):
                out += [f"Got: {sides[0]}", f"Expected: {sides[1]}"]
            else:
                out.append("AssertionError")
        else:
            where = f" (line {self._line(frames[in_target[-1]][1])})" if in_target else ""
            out.append(_clip(first) + where)
        return "\n".join(out)

    def _line(self, file_line: int) -> int:
        """The function's own line number (1 = the `def`) of a line of the file, 0 if outside it."""
        n = file_line - self.target.start
        return n if 1 <= n <= len(self.target.lines) + 20 else 0

    def _relative(self, text: str, rel: str) -> str:
        """`file.py:LINE` inside the target becomes `line N` of the function, as the model numbers it."""
        def sub(m: re.Match) -> str:
            n = self._line(int(m.group(1)))
            return f"line {n}" if n else m.group(0)
        return re.sub(rf"(?<![\w./-]){re.escape(rel)}:(\d+)", sub, text)


# a frame of pytest's --tb=short traceback: `path.py:LINE: in name`, then the line's source
_FRAME = re.compile(r"^(\S[^\n]*?):(\d+): in (\S+)\n([^\n]*)", re.M)


def _is_assert_eq(line: str) -> bool:
    try:
        stmt = ast.parse(line).body[0]
    except (SyntaxError, IndexError, ValueError):
        return False
    return isinstance(stmt, ast.Assert) and stmt.msg is None and is_eq_compare(stmt.test)


def _clip(text: str) -> str:
    return text if len(text) <= FAILURE_BUDGET else text[: FAILURE_BUDGET - 1] + "…"


def workspace_interpreter(root: Path, configured: str = "") -> str:
    """The workspace's Python: the configured one, else a virtualenv in the root, else ours."""
    import sys
    if configured:
        return configured
    for venv in (".venv", "venv", "env"):
        for rel in ("bin/python", "Scripts/python.exe"):
            if (root / venv / rel).exists():
                return str(root / venv / rel)
    return sys.executable
