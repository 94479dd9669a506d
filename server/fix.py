"""One "Fix with model" job, for the language server and `coedit fix` alike.

    target (function at the cursor) -> tests (discovery) -> WorkspaceCheck (sandboxed pytest)
    -> the repair engine (`dsl.repair`: localization, edit search, the model's line proposals and
       episodes, one budget) -> the new document text, checked by ast.parse

The model runs in its own process (`ModelCache` keeps it; server/model_process.py): if native code
crashes there, the job ends with an error that says so, nothing changed, and the next job starts
a new process. Events (`on_event(text)`) report progress ("search · 30/400 runs", "model · episode 2 · turn 3 ·
REPL 7 · 3/5 tests pass"); `cancelled()` is polled before every test run, and a cancelled job
returns no new text. What each proposer tried is kept for the report (`FixOutcome.report`).
"""
from __future__ import annotations

import ast
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dsl import RepairConfig, RepairResult, Task, repair

from .defaults import default_model
from .backends import ModelError, require_model
from .model_process import ModelCrashed, ModelProcess
from .discovery import NoTests, discover
from .options import Options
from .target import find_target
from .workspace_check import WorkspaceCheck, workspace_interpreter


@dataclass
class FixOutcome:
    status: str  # fixed | not_fixed | already_passing | cancelled | error
    message: str  # one line for the user
    new_source: str | None = None
    report: str = ""  # markdown: what each proposer tried, the fix, the model's episodes
    result: RepairResult | None = None
    tests: list[str] = field(default_factory=list)  # the node ids that judged it
    checks: int = 0  # test runs of the workspace's tests
    warm_checks: int = 0  # of them, answered by the warm runner (the rest by pytest afresh)


class ModelCache:
    """The model's process (server/model_process.py): started on first use, kept while in use,
    stopped after `idle_unload` seconds; a process that crashed is replaced by the next `get`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._backend: ModelProcess | None = None
        self._last_used = 0.0

    def get(self, opts: Options, on_event: Callable[[str], None]) -> ModelProcess:
        path = opts.model or str(default_model())
        key = (path, opts.backend, opts.gpu_layers, opts.threads)
        with self._lock:
            if self._key != key or self._backend is None or not self._backend.alive:
                self._close()
                options = {"threads": opts.threads}
                if opts.backend == "transformers" and path.endswith(".gguf"):
                    raise ModelError(f"{path}: the transformers backend needs a checkpoint directory, not a .gguf")
                if path.endswith(".gguf"):
                    options["n_gpu_layers"] = opts.gpu_layers
                on_event(f"loading model {Path(path).name}")
                self._backend = ModelProcess(path, **options)
                on_event(f"model loaded (process {self._backend.pid})")
                self._key = key
            self._last_used = time.monotonic()
            return self._backend

    def _close(self) -> None:
        if self._backend is not None:
            self._backend.close()
        self._backend, self._key = None, None

    def close(self) -> None:
        with self._lock:
            self._close()

    def unload_if_idle(self, idle_s: float) -> bool:
        with self._lock:
            if self._backend is not None and idle_s > 0 and time.monotonic() - self._last_used > idle_s:
                self._close()
                return True
        return False


class LazyModel:
    """The model as the repair engine sees it, loaded only when a model proposer first asks (a fix
    the search finds never waits for a model to load). One fix keeps the process it started with:
    if that process dies, the fix ends with ModelCrashed, and only the next fix starts another."""

    def __init__(self, models: ModelCache, opts: Options, on_event: Callable[[str], None]):
        self.models, self.opts, self.on_event = models, opts, on_event
        self._model: ModelProcess | None = None
        self.deadline: float | None = None  # this fix's end (the engine sets it), sent with each request:
        # the process is shared with other documents' fixes, each with its own end

    def _get(self) -> ModelProcess:
        if self._model is None:
            self._model = self.models.get(self.opts, self.on_event)
        return self._model

    def __call__(self, messages, temperature=None):
        return self._get()(messages, temperature=temperature, deadline=self.deadline)

    def complete(self, messages, prefix, n, temperature=0.7):
        return self._get().complete(messages, prefix, n, temperature, deadline=self.deadline)

    def complete_each(self, messages, asks, temperature=0.7):
        return self._get().complete_each(messages, asks, temperature, deadline=self.deadline)

    def read_seconds(self, messages):
        """How long the model would take to read `messages` (the engine's guards, as in `trainer eval`)."""
        return self._get().read_seconds(messages)


def run_fix(path: str | Path, source: str, line: int, root: str | Path, opts: Options, models: ModelCache, *,
            end_line: int | None = None, on_event: Callable[[str], None] = lambda s: None,
            cancelled: Callable[[], bool] = lambda: False) -> FixOutcome:
    path, root = Path(path).resolve(), Path(root).resolve()
    target = find_target(source, line, end_line)
    if target is None:
        return FixOutcome("error", "Put the cursor inside a function to fix it.")
    try:
        tests = discover(root, path, target, opts.tests)
    except NoTests as e:
        return FixOutcome("error", f"{e}.")
    check = WorkspaceCheck(root, path, source, target, tests, workspace_interpreter(root, opts.python), opts.timeout,
                           warm=opts.warm)
    try:
        out = _fix(check, path, target, tests, opts, models, on_event, cancelled)
    finally:
        check.close()  # the warm runner's process
    out.tests, out.checks, out.warm_checks = tests.node_ids, check.checks, check.warm_checks
    return out


def engine_config(opts: Options) -> RepairConfig:
    """The repair engine's settings for a Fix (`trainer eval` builds the same from its defaults)."""
    return RepairConfig(runs=opts.runs, seconds=opts.seconds, proposers=proposers(opts.proposers), episodes=opts.k,
                        max_turns=opts.max_turns, temperature=opts.temperature,
                        redraws=opts.redraws if opts.temperature > 0 else 0)


def _fix(check: WorkspaceCheck, path: Path, target, tests, opts: Options, models: ModelCache,
         on_event: Callable[[str], None], cancelled: Callable[[], bool]) -> FixOutcome:
    on_event(f"running {len(tests.node_ids)} test(s) on {target.qualname}")
    task = Task(target.qualname, target.view, tests.source)  # a method at column 0, as the search needs
    cfg = engine_config(opts)
    try:
        if {"lines", "episodes"} & set(cfg.proposers):
            require_model(opts.model or str(default_model()))  # a model that is not there is said at once
        result = repair(task, check, cfg, model=LazyModel(models, opts, on_event), on_event=on_event,
                        cancelled=cancelled)
    except ModelCrashed as e:  # a native crash in the model's process: the document is untouched
        what = str(e)
        return FixOutcome("error", f"{what[:1].upper()}{what[1:]} while fixing {target.qualname}; nothing was changed. "
                                   "The next Fix starts a new model process.")
    except ModelError as e:
        return FixOutcome("error", str(e))
    rep = report(target.qualname, result, tests.node_ids)
    if result.status == "invalid":
        return FixOutcome("error", result.message, report=rep, result=result)
    if result.status == "already_passing":
        return FixOutcome("already_passing", f"The tests of {target.qualname} already pass; nothing to fix.",
                          result=result)
    if result.status != "fixed":
        text = f"No fix found for {target.qualname}: {result.message[0].lower()}{result.message[1:]}"
        return FixOutcome(result.status, "Cancelled; nothing was changed." if result.status == "cancelled" else text,
                          report=rep, result=result)
    new_source = check.splice(result.code)
    try:
        ast.parse(new_source)
    except SyntaxError:  # cannot happen for code that passed its tests; checked, not assumed
        return FixOutcome("not_fixed", f"No fix found for {target.qualname}; nothing was changed.", report=rep,
                          result=result)
    return FixOutcome("fixed", f"Fixed {target.qualname}: {result.message[0].lower()}{result.message[1:]}",
                      new_source, rep, result)


def proposers(names: list[str]) -> tuple[str, ...]:
    """The engine's proposers from the setting's names ("model" = line proposals and episodes)."""
    out: list[str] = []
    for name in names:
        out += ["lines", "episodes"] if name == "model" else [name]
    return tuple(dict.fromkeys(out))


def report(name: str, result: RepairResult, tests: list[str] = ()) -> str:
    """What was tried and what was found, as markdown: the tests that judge it, the fix, then each
    proposer's share."""
    out = [f"# coedit: fixing `{name}`", ""]
    if tests:
        shown = ", ".join(f"`{t}`" for t in tests[:8]) + (f" and {len(tests) - 8} more" if len(tests) > 8 else "")
        out += [f"Judged by {len(tests)} test(s): {shown}.", ""]
    if result.status == "fixed":
        out += [f"**Fixed by {result.proposer}** after {result.at.get('runs')} test runs, {result.at.get('seconds')} s:",
                ""] + [f"- `{c}`" for c in result.commands] + [""]
    tried = ", ".join(f"{k} {v}" for k, v in result.tried.items())
    out += [f"Test runs: {result.runs} ({tried}); {result.seconds} s.", ""]
    if result.ranking:
        out += ["Suspect lines: " + ", ".join(f"{n} ({s:.2f})" for n, s in result.ranking[:5]), ""]
    for proposer, flags in result.rejected:
        out.append(f"- rejected a passing edit by {proposer}: it {', '.join(flags)} (reward-hacking audit)")
    for i, traj in enumerate(result.episodes, 1):
        verdict = "solved" if traj.solved else ("cancelled" if traj.cancelled else "not solved")
        out += [f"## Episode {i}: {verdict}", ""]
        for n, turn in enumerate(traj.turns, 1):
            mark = "" if turn.valid else f" — invalid: {turn.error}"
            out.append(f"{n}. `{turn.text.strip()}` → {turn.tests_passed}/{turn.tests_total} tests pass{mark}")
        out.append("")
    return "\n".join(out)
