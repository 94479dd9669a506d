"""The verifier for a real workspace: the project's own pytest tests against an edited function.

`WorkspaceCheck(...)(function_code)` splices the edited function into the file, and runs the
selected tests with pytest, under the workspace's own interpreter (so its dependencies import), in
the `dsl` sandbox: the workspace read-only with the edited file laid over it (`dsl.Job` with
`workspace` and `overlays`). Nothing in the workspace is written. The answer is a
`dsl.VerifyResult` whose feedback reads like the code+tests verifier's, with line numbers given
relative to the function, as the model sees it. A syntax error is reported without running pytest.
"""
from __future__ import annotations

import ast
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from dsl import Job, Limits, TestResult, VerifyResult, run_job

from .discovery import Tests
from .target import Target

FAILURE_BUDGET = 600  # characters of one failure's text shown


@dataclass
class WorkspaceCheck:
    root: Path
    file: Path
    source: str  # the document as it was when the fix started
    target: Target
    tests: Tests
    interpreter: str
    timeout_s: float = 30.0

    def splice(self, function_code: str) -> str:
        return self.target.splice(self.source, function_code)

    def __call__(self, function_code: str) -> VerifyResult:
        new_source = self.splice(function_code)
        try:
            ast.parse(new_source)
        except SyntaxError as e:
            line = (e.lineno or 0) - self.target.start
            where = f" at line {line}" if 1 <= line <= len(self.target.lines) + 5 else ""
            return VerifyResult(False, 0, len(self.tests.node_ids), f"SyntaxError{where}: {e.msg}", code_status="syntax")
        rel = os.path.relpath(self.file, self.root)
        argv = ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=short", "--no-header",
                "-o", "junit_family=xunit1", "--junitxml={workdir}/report.xml"]
        if self.tests.doctest_module:
            argv.append("--doctest-modules")
        job = Job(argv + self.tests.node_ids, workspace=str(self.root), overlays={rel: new_source.encode()},
                  interpreter=self.interpreter, limits=Limits(wall_s=self.timeout_s, mem_mb=4096))
        res = run_job(job, collect=["report.xml"])
        return self._interpret(res, rel)

    def _interpret(self, res, rel: str) -> VerifyResult:
        total = len(self.tests.node_ids)
        if res.timed_out:
            return VerifyResult(False, 0, total, f"Timeout: the tests ran longer than {self.timeout_s:g}s.",
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
                results.append(TestResult(i, name, status, message=self._relative(node.get("message", "") + "\n"
                                                                                   + (node.text or ""), rel)))
        passed = sum(r.status == "pass" for r in results)
        ok = res.returncode == 0 and results and passed == len(results)
        if ok:
            feedback = f"All {len(results)} tests pass."
        elif not results:
            tail = (res.stdout + res.stderr).strip()[-FAILURE_BUDGET:]
            feedback = f"Error collecting the tests:\n{self._relative(tail, rel)}"
        else:
            bad = next(r for r in results if r.status != "pass")
            feedback = f"Tests: {passed}/{len(results)} pass.\nFailed: {bad.source}\n{_clip(bad.message.strip())}"
        return VerifyResult(bool(ok), passed, len(results) or total, feedback, tests=results, isolation=res.isolation,
                            wall_s=res.wall_s, output=res.stdout[-FAILURE_BUDGET:])

    def _relative(self, text: str, rel: str) -> str:
        """`file.py:LINE` inside the target becomes `line N` of the function, as the model numbers it."""
        def sub(m: re.Match) -> str:
            n = int(m.group(1)) - self.target.start
            return f"line {n}" if 1 <= n <= len(self.target.lines) + 20 else m.group(0)
        return re.sub(rf"{re.escape(rel)}:(\d+)", sub, text)


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
