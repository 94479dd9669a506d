"""Our side of the warm workspace runner (`warm_pytest.py`, which runs inside the sandbox).

`WarmRunner.start()` stages a `dsl.Job` (the workspace read-only, the runner script in its working
directory, the workspace's interpreter) and keeps it alive; `run(code)` sends one check and returns
what a fresh `pytest` job would have: a `dsl.JobResult` with the junit report, or None when the warm
path cannot answer this one (then the caller runs pytest afresh, and says why in the log).

When the warm path is not trusted at all (`usable` false, `why` says why):
* the target is not a loaded, module-level function or method after collection (a nested
  function, a module the tests import lazily), or collection itself failed;
* the target's module calls it at import time (a value computed from the old code would stay);
* the runner did not start (pytest missing, a plugin that breaks the fork, the startup limit).
And for one check (`safe_edit`): the edit renames the function, changes its docstring (doctests
were collected from it), adds a decorator, or changes its signature (defaults are evaluated when
the module loads, before later names exist; a decorator may have read the signature).
"""
from __future__ import annotations

import ast
import contextlib
import json
import logging
import os
import select
import textwrap
import time
from pathlib import Path

from dsl import Job, JobResult, Limits, isolation
from dsl.sandbox import staged

from .target import Target

log = logging.getLogger(__name__)

SCRIPT = Path(__file__).with_name("warm_pytest.py")
GRACE_S = 2.0  # past a check's wall limit, how long to wait for the runner to answer


def _function(code: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    try:
        body = ast.parse(textwrap.dedent(code)).body
    except (SyntaxError, ValueError):
        return None
    return body[0] if len(body) == 1 and isinstance(body[0], (ast.FunctionDef, ast.AsyncFunctionDef)) else None


def _called_at_import(tree: ast.Module, name: str) -> bool:
    """Whether module- or class-level code (outside any function) calls `name`."""
    def walk(node: ast.AST) -> bool:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Call):
                f = child.func
                if (isinstance(f, ast.Name) and f.id == name) or (isinstance(f, ast.Attribute) and f.attr == name):
                    return True
            if walk(child):
                return True
        return False
    return walk(tree)


class WarmRunner:
    def __init__(self, root: Path, rel: str, source: str, target: Target, pytest_args: list[str], interpreter: str,
                 startup_s: float = 120.0):
        self.root, self.rel, self.target, self.args = root, rel, target, pytest_args
        self.interpreter, self.startup_s = interpreter, startup_s
        self.usable, self.why = False, "not started"
        self.node_ids: list[str] = []
        self.source = source  # the document as the Fix found it (maybe unsaved): the runner loads this
        self._stack = contextlib.ExitStack()
        self._proc = None
        self._old = _function(target.code)
        tree = ast.parse(source)
        self._first = self._first_line(tree)
        self._import_call = _called_at_import(tree, target.name)

    def _first_line(self, tree: ast.Module) -> int:
        """The line the function's code object starts on: its first decorator, or its `def`."""
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.lineno == self.target.start + 1:
                return min([d.lineno for d in node.decorator_list] + [node.lineno])
        return self.target.start + 1

    def start(self) -> bool:
        if self._import_call:
            self.why = f"{self.rel} calls {self.target.name} at import time"
            return False
        if self._old is None:
            self.why = f"{self.target.qualname} does not parse as one function"
            return False
        script = SCRIPT.read_bytes()
        argv = ["python", "{workdir}/warm_pytest.py", self.rel, self.target.qualname, str(self._first), "--", *self.args]
        job = Job(argv, files={"warm_pytest.py": script}, workspace=str(self.root), interpreter=self.interpreter,
                  overlays={self.rel: self.source.encode()},
                  limits=Limits(wall_s=self.startup_s, cpu_s=3600, mem_mb=4096))
        t0, st = time.monotonic(), None
        try:
            st = self._stack.enter_context(staged(job))
            self._proc = st.popen()
            hello = self._read(self.startup_s)
        except OSError as e:
            hello, self.why = None, f"cannot start: {e}"
        if st is None:
            pass  # why: set above
        elif not hello or not hello.get("ready"):
            self.why = f"the runner did not start: {self._said(st)}"
        elif hello["collect_errors"]:
            self.why = "pytest reported errors collecting the tests"
        elif not hello["found"]:
            self.why = f"{self.target.qualname} is not a module-level function loaded after collection"
        else:
            self.usable, self.why = True, ""
            self.node_ids = hello["items"]
            log.info("warm runner for %s ready in %.1fs (%d tests)", self.target.qualname, time.monotonic() - t0,
                     len(self.node_ids))
            return True
        log.info("warm runner not used for %s: %s", self.target.qualname, self.why)
        self.close()
        return False

    def _said(self, st) -> str:
        """The end of what the runner (pytest, or Python before it) wrote, for the log."""
        if self._proc is not None and self._proc.poll() is not None and self._proc.stderr:
            err = self._proc.stderr.read1(2000).decode(errors="replace").strip()
            if err:
                return err[-500:]
        try:
            return Path(st.work, "out.txt").read_text(errors="replace").strip()[-500:] or "no output"
        except OSError:
            return "no output"

    def safe_edit(self, code: str) -> bool:
        new = _function(code)
        if new is None or self._old is None or new.name != self._old.name or type(new) is not type(self._old):
            return False
        if ast.get_docstring(new, clean=False) != ast.get_docstring(self._old, clean=False):
            return False
        # A new signature goes to pytest afresh: its defaults would be evaluated now, in the loaded
        # module, where a fresh import evaluates them before later names exist (`default=first`).
        if new.decorator_list or ast.dump(new.args) != ast.dump(self._old.args) \
                or ast.dump(new.returns or ast.Pass()) != ast.dump(self._old.returns or ast.Pass()):
            return False
        return True

    def run(self, code: str, wall_s: float, coverage: bool = False) -> tuple[JobResult, dict | None] | None:
        """One check of the function's new `code` (its lines as in the file): pytest's answer and,
        with `coverage`, the file lines of the target each test ran; None: ask a fresh pytest."""
        if not self.usable or not self.safe_edit(code):
            return None
        req = {"code": code if code.endswith("\n") else code + "\n", "def_line": self.target.start + 1,
               "end_line": self.target.end, "wall_s": wall_s, "coverage": coverage}
        try:
            self._proc.stdin.write((json.dumps(req) + "\n").encode())
            self._proc.stdin.flush()
            resp = self._read(wall_s + GRACE_S)
        except (OSError, ValueError):
            resp = None
        if resp is None:
            self.why = "the runner stopped answering"
            log.warning("warm runner for %s: %s; using fresh pytest runs", self.target.qualname, self.why)
            self.close()
            return None
        if resp["patch_failed"] is not None or resp["returncode"] == 97:
            log.info("warm runner cannot lay this edit onto %s (%s); a fresh pytest judges it",
                     self.target.qualname, resp["patch_failed"])
            return None
        files = {"report.xml": resp["report"].encode()} if resp["report"] is not None else {}
        res = JobResult(resp["returncode"], resp["output"] or "", "", resp["timed_out"], resp["wall_s"],
                        isolation(), files)
        return res, resp["coverage"]

    def _read(self, timeout: float) -> dict | None:
        fd, buf, deadline = self._proc.stdout.fileno(), b"", time.monotonic() + timeout
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return None
            buf += chunk
        return json.loads(buf)

    def close(self) -> None:
        self.usable = False
        if self._proc is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=2)
            except Exception:
                with contextlib.suppress(OSError):
                    os.killpg(self._proc.pid, 9)
                self._proc.wait()
            for f in (self._proc.stdout, self._proc.stderr):
                f.close()
            self._proc = None
        self._stack.close()
