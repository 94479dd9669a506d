"""One "Fix with model" job, for the language server and `coedit fix` alike.

    target (function at the cursor) -> tests (discovery) -> WorkspaceCheck (sandboxed pytest)
    -> up to k episodes of `dsl.run_episode(task, backend, check=...)`, the first greedy, stopping
       at the first whose function passes every test -> the new document text, checked by ast.parse

Events (`on_event(text)`) report progress ("episode 2/4 · turn 3 · REPL 7 · 3/5 tests pass");
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

from .backends import ModelError, load_backend
from .defaults import default_model
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
    """Loads the model on first use, keeps it while in use, unloads it after `idle_unload` seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._backend = None
        self._last_used = 0.0

    def get(self, opts: Options, on_event: Callable[[str], None]):
        path = opts.model or str(default_model())
        key = (path, opts.backend, opts.gpu_layers, opts.threads)
        with self._lock:
            if self._key != key or self._backend is None:
                on_event(f"loading model {Path(path).name}")
                self._backend = None
                options = {"threads": opts.threads}
                if opts.backend == "transformers" and path.endswith(".gguf"):
                    raise ModelError(f"{path}: the transformers backend needs a checkpoint directory, not a .gguf")
                if path.endswith(".gguf"):
                    options["n_gpu_layers"] = opts.gpu_layers
                self._backend = load_backend(path, **options)
                self._key = key
            self._last_used = time.monotonic()
            return self._backend

    def unload_if_idle(self, idle_s: float) -> bool:
        with self._lock:
            if self._backend is not None and idle_s > 0 and time.monotonic() - self._last_used > idle_s:
                self._backend, self._key = None, None
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
    try:
        backend = models.get(opts, on_event)
    except ModelError as e:
        return FixOutcome("error", str(e))
    task = Task(target.qualname, target.code, tests.source)
    context = getattr(backend, "context", 0)
    if context:  # say so rather than let the model see a truncated context
        need = len(backend.fmt.prompt(new_conversation(task, EditorState.from_code(task.code).render(first.feedback))))
        if need + 64 * opts.max_turns > context:
            return FixOutcome("error", f"{target.qualname} with its tests is {need} tokens, too long for the model's "
                                       f"{context}-token context; select fewer tests with the `tests` setting.")
    episodes: list[Trajectory] = []
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
