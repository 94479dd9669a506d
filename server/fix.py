"""One "Fix with model" job, for the language server and `coedit fix` alike.

    target (function at the cursor) -> tests (discovery) -> WorkspaceCheck (sandboxed pytest)
    -> up to k episodes of `dsl.run_episode(task, backend, check=...)`, the first greedy, stopping
       at the first whose function passes every test -> the new document text, checked by ast.parse

The model runs in its own process (`ModelCache` keeps it; server/model_process.py): if native code
crashes there, the job ends with an error that says so, nothing changed, and the next job starts
a new process. Events (`on_event(text)`) report progress ("episode 2/4 · turn 3 · REPL 7 · 3/5 tests pass");
`cancelled()` is polled before every turn, and a cancelled job returns no new text. The chain of
edits of every episode is kept for the report (`FixOutcome.report`, markdown).
"""
from __future__ import annotations

import ast
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dsl import EditorState, Task, Trajectory, new_conversation, run_episode

from .defaults import default_model
from .model_files import ModelError
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
    report: str = ""  # markdown: the chain of edits of every episode
    episodes: list[Trajectory] = field(default_factory=list)


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
    check = WorkspaceCheck(root, path, source, target, tests, workspace_interpreter(root, opts.python), opts.timeout)
    on_event(f"running {len(tests.node_ids)} test(s) on {target.qualname}")
    first = check(target.code)
    if first.code_status == "invalid":
        return FixOutcome("error", first.feedback)
    if first.passed:
        return FixOutcome("already_passing", f"The tests of {target.qualname} already pass; nothing to fix.")
    episodes: list[Trajectory] = []
    try:
        return _episodes(target, Task(target.qualname, target.code, tests.source), check, first,
                         models.get(opts, on_event), opts, episodes, on_event, cancelled)
    except ModelCrashed as e:  # a native crash in the model's process: the document is untouched
        what = str(e)
        return FixOutcome("error", f"{what[:1].upper()}{what[1:]} while fixing {target.qualname}; nothing was changed. "
                                   "The next Fix starts a new model process.",
                          report=report(target.qualname, episodes), episodes=episodes)
    except ModelError as e:
        return FixOutcome("error", str(e))


def _episodes(target, task: Task, check: WorkspaceCheck, first, backend: ModelProcess, opts: Options,
              episodes: list[Trajectory], on_event: Callable[[str], None], cancelled: Callable[[], bool]) -> FixOutcome:
    """Up to k episodes of the model, appended to `episodes` as they end."""
    context = getattr(backend, "context", 0)
    if context:  # say so rather than let the model see a truncated context
        need = backend.prompt_tokens(new_conversation(task, EditorState.from_code(task.code).render(first.feedback)))
        if need + 64 * opts.max_turns > context:
            return FixOutcome("error", f"{target.qualname} with its tests is {need} tokens, too long for the model's "
                                       f"{context}-token context; select fewer tests with the `tests` setting.")
    # redraws sample at the episodes' temperature, the greedy first episode's too (greedy would
    # only draw the same command again); at temperature 0 there is nothing to redraw
    redraws = opts.redraws if opts.temperature > 0 else 0

    def redraw(messages):
        return backend(messages, temperature=opts.temperature)

    for i in range(1, opts.k + 1):
        def policy(messages, t=0.0 if i == 1 else opts.temperature):
            return backend(messages, temperature=t)

        def progress(turn, ep, i=i):
            cmd = turn.text.strip().split(" >>>")[0][:40]
            on_event(f"episode {i}/{opts.k} · turn {ep.turn} · {cmd} · {turn.tests_passed}/{turn.tests_total} tests pass")

        traj = run_episode(task, policy, check=check, max_turns=opts.max_turns, stop_when_solved=True,
                           on_turn=progress, should_stop=cancelled, redraws=redraws, redraw=redraw)
        episodes.append(traj)
        if traj.cancelled or cancelled():
            return FixOutcome("cancelled", "Cancelled; nothing was changed.", report=report(target.qualname, episodes),
                              episodes=episodes)
        if traj.solved:
            new_source = check.splice(traj.final_code)
            try:
                ast.parse(new_source)
            except SyntaxError:
                continue  # cannot happen for code that passed its tests; checked, not assumed
            return FixOutcome("fixed", f"Fixed {target.qualname} in episode {i} ({len(traj.turns)} edits); "
                                       f"{first.tests_total} test(s) pass.", new_source, report(target.qualname, episodes),
                              episodes)
    return FixOutcome("not_fixed", f"No fix found for {target.qualname} in {opts.k} episode(s); nothing was changed.",
                      report=report(target.qualname, episodes), episodes=episodes)


def report(name: str, episodes: list[Trajectory]) -> str:
    """The chain of edits, as markdown."""
    out = [f"# coedit: fixing `{name}`", ""]
    for i, traj in enumerate(episodes, 1):
        verdict = "solved" if traj.solved else ("cancelled" if traj.cancelled else "not solved")
        out += [f"## Episode {i}: {verdict}", ""]
        for n, turn in enumerate(traj.turns, 1):
            mark = "" if turn.valid else f" — invalid: {turn.error}"
            out.append(f"{n}. `{turn.text.strip()}` → {turn.tests_passed}/{turn.tests_total} tests pass{mark}")
        out.append("")
    return "\n".join(out)
