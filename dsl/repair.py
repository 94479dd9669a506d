"""The repair engine: fault localization, edit search and the model's proposals under one budget.

    result = repair(task, check, RepairConfig(runs=400, seconds=30), model=policy_or_None)

Every path that fixes code runs this one driver (the server's Fix, `coedit fix`, `trainer eval`), so
every published number is what a user gets. Every proposal is a `dsl` command (or a chain) applied to
an `EditorState`, judged by `check` (code -> VerifyResult) against one test-run and one time budget.

The schedule, cheap and deterministic first, the model interleaved:
  1. the start code's run (1 test run); already passing -> done
  2. localization (dsl/localize.py): each test alone on instrumented code, when `run_tests` is given
  3. search: for code that does not compile, the edits that make it compile (dsl/syntax_fix.py);
     then single edits (dsl/mutate.py) at the most suspect lines, tiered by operator family,
     up to `search_first` runs or `search_first_s` seconds; then chains of those edits (step 6, without
     the model's lines) up to `search_first` runs in all or `chains_first_s` seconds
  4. model line proposals: for the top lines of the furthest state so far, `REPL k >>>` forced
     (and `ADDL k+1 >>>` for `add_lines` of them) and N rewrites sampled; then `REPL` and `ADDL`
     forced, the line the model's own choice
  5. model episodes (`dsl.run_episode`, the one agent loop): the first greedy, from the furthest
     state reached so far; an episode ends where the model repeats a command to no effect
  6. the rest of the single edits, then two or more edits best-first: from states whose tests got
     further (more passing; then failing by assertion rather than by error; then, failing as the
     start does, raising from a later line), their own edits; up to the test runs that step 7's
     turns need. The first `line_states` states expanded also get step 4's rewrites of their lines
  7. sampled episodes from the furthest state while budget lasts
  8. what is left of steps 6 and 7's budget: the rest of the chains
It stops at the first plausible fix (all tests pass) that the audit (dsl/audit.py) does not flag,
then spends up to `polish_runs` undoing changed lines the fix does not need (the smallest diff wins).
`proposers` restricts it: "search", "lines" (line proposals), "episodes"; "model" means both of those.
The model is any object with `__call__(messages, temperature=None) -> command`, for line proposals
`complete(messages, prefix, n, temperature) -> [command]`, optionally `read_seconds(messages)`,
`complete_each(messages, [(prefix, n), ...], temperature) -> [[command], ...]` (dsl/model_asks.py)
and a `deadline` attribute, set to the fix's end: a reply not whole by then raises OutOfTime.
"""
from __future__ import annotations

import heapq
import time
from dataclasses import replace
from typing import Callable

from .audit import audit
from .commands import ParseError, edit_script, parse
from .conversation import new_conversation
from .episode import OutOfTime, Trajectory, run_episode
from .fitness import behaviour, fitness, reach
from .localize import Spectrum, rank, spectrum
from .model_asks import complete_each, line_batches
from .mutate import Candidates, Mutation, hints_from_feedback, mutations
from .polish import smallest
from .repair_config import RepairConfig, RepairResult
from .state import EditorState
from .syntax_fix import syntax_fixes
from .tasks import Task
from .verifier import VerifyResult

TIERS = (("undefined_name", "initialize", "attribute_typo", "missing_import", "not_callable", "boolop", "not",
          "compare", "augassign", "binop", "constant"), ("bounds", "call", "operand", "statement"), ("name",))


def _hints(r: VerifyResult):
    """What a run's feedback and test messages say went wrong (names undefined, attributes missing)."""
    return hints_from_feedback(r.feedback + "\n" + "\n".join(t.message for t in r.tests))


class _Stop(Exception):
    """Budget spent, cancelled, or (stop_at_fix) a fix found: unwinds to `Repair.run`."""


class Repair:
    def __init__(self, task: Task, check: Callable[[str], VerifyResult], cfg: RepairConfig | None = None, *,
                 model=None, run_tests: Callable[[str, str], VerifyResult] | None = None,
                 on_event: Callable[[str], None] = lambda s: None, cancelled: Callable[[], bool] = lambda: False):
        self.task, self._raw_check, self.cfg = task, check, cfg or RepairConfig()
        self.cfg.check()
        self.model, self.run_tests, self.on_event, self.cancelled = model, run_tests, on_event, cancelled
        self.cache: dict[str, VerifyResult] = {}
        self.runs, self.t0 = 0, time.monotonic()
        self.tried: dict[str, int] = {}
        self.frontier: list[tuple] = []  # (-fitness, seen behaviour, -reach, order, code, commands, by)
        self.best: tuple[int, str] = (-1, task.code)
        self.fix: tuple[str, str, tuple[str, ...]] | None = None  # (code, proposer, commands)
        self.rejected: list[tuple[str, list[str]]] = []
        self.episodes: list[Trajectory] = []
        self.at: dict[str, float] = {}
        self.seen, self.start_fitness, self.start_reach = Candidates(task.code), 0, 0  # the last two: the start's run
        self.start_undefined: set[str] = set()  # names the start's errors call undefined
        self.turn_s = self.line_s = 0.0  # the model's last turn / one of its last line rewrites took: the guards
        self.behaviours: set[tuple] = set()  # what the tests saw of each state checked (novel)
        self.lines_done: set[str] = set()  # states the model has written lines for

    # -- budget and checks -------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def over(self) -> bool:
        return self.runs >= self.cfg.runs or self.elapsed() >= self.cfg.seconds or self.cancelled()

    def check(self, code: str, proposer: str, commands: tuple[str, ...] = ()) -> VerifyResult:
        if code in self.cache:
            return self.cache[code]
        if self.over() or (self.fix and self.cfg.stop_at_fix):
            raise _Stop()
        self.runs += 1
        self.tried[proposer] = self.tried.get(proposer, 0) + 1
        r = self.cache[code] = self._raw_check(code)
        f, novel = fitness(r), self.novel(r)
        if r.passed:
            flags = audit(self.task.code, code, self.task.tests)
            if flags:
                self.rejected.append((proposer, flags))
            elif self.fix is None:
                self.fix = (code, proposer, commands)
                self.at = {"runs": self.runs, "seconds": round(self.elapsed(), 2)}
                self.on_event(f"{proposer} found a fix · {r.tests_passed}/{r.tests_total} tests pass")
        elif len(commands) < self.cfg.depth and (f > self.start_fitness or f == self.start_fitness and (
                reach(r) > self.start_reach or _hints(r).undefined - self.start_undefined)):
            # (a name the error calls undefined that the start's did not: `amth` -> `math` is half of
            # a fix whose other half, the import, only the new error asks for)
            # states that pass more tests first; then those that behave as no state before did (most
            # edits change nothing the tests see); then, at the start's fitness, errors from later lines
            heapq.heappush(self.frontier, (-f, not novel, -reach(r), self.runs, code, commands,
                                           proposer.split("·")[0]))
        if f > self.best[0] and not r.passed:
            self.best = (f, code)
        return r

    def novel(self, r: VerifyResult) -> bool:
        """No state checked before behaved like this one (dsl/fitness.py's `behaviour`)."""
        seen = len(self.behaviours)
        self.behaviours.add(behaviour(r))
        return len(self.behaviours) > seen

    # -- proposers -----------------------------------------------------------------------------
    def _singles(self, code: str, order: list[int], result: VerifyResult):
        """Single edits of `code` at the lines in `order`: line by line ("line", TBar's way), or family
        by family across them ("family": cheap families first; bench/search_order.py measures both)."""
        ms = mutations(code, order, _hints(result))
        if self.cfg.order == "line":
            yield from ms
            return
        for tier in TIERS:
            for family in tier:
                yield from (m for m in ms if m.operator == family)

    def _try(self, code: str, m: Mutation, proposer: str, commands: tuple[str, ...]) -> None:
        new = EditorState.from_code(code).apply(m.command)
        if isinstance(new, EditorState) and self.seen.fresh(new.to_code()):
            if self.runs % 10 == 0:
                self.on_event(f"search · {self.runs}/{self.cfg.runs} runs · line {m.line}")
            self.check(new.to_code(), proposer, commands + (str(m.command),))

    def search_syntax(self) -> None:
        """Code that does not compile: the edits that make it compile (dsl/syntax_fix.py), tested."""
        if self.start_fitness == 0:
            for code, commands in syntax_fixes(self.task.code):
                if self.seen.fresh(code):
                    self.check(code, f"search·{len(commands)}" if len(commands) > 1 else "search", commands)

    def search_singles(self, limit: int, seconds: float = float("inf"), keep: int = 0) -> None:
        """Single edits of the start, up to `limit` runs or `seconds`, leaving `keep` of the budget."""
        stop_at, until = min(self.runs + limit, self.cfg.runs - keep), self.elapsed() + seconds
        for m in self.singles:
            if self.runs >= stop_at or self.elapsed() >= until:
                return
            self._try(self.task.code, m, "search", ())

    def search_chains(self, keep: int = 0, seconds: float = float("inf"), lines: bool = True) -> None:
        """Best-first over states that got further, by their own single edits, until `keep` runs are
        left or `seconds` have passed (a state cut short goes back: its tried edits cost nothing again)."""
        until = self.elapsed() + seconds
        while self.frontier and self.runs < self.cfg.runs - keep and self.elapsed() < until:
            item = heapq.heappop(self.frontier)
            *_, code, commands, by = item
            r = self.cache[code]
            order = self.own_ranking(code)
            order_lines = order[: max(4, self.cfg.top_lines)] + [n for n, _ in self.ranking if n not in order[:4]]
            name = f"search·{len(commands) + 1}" if by == "search" else "model+search"
            if lines and "lines" in self.cfg.proposers and code not in self.lines_done and \
                    len(self.lines_done) <= self.cfg.line_states:
                self.line_proposals(code, commands)  # the model writes the lines this state still lacks
            for m in self._singles(code, order_lines, r):
                if self.runs >= self.cfg.runs - keep or self.elapsed() >= until:
                    heapq.heappush(self.frontier, item)
                    return
                self._try(code, m, name, commands)

    def line_proposals(self, code: str | None = None, commands: tuple[str, ...] = ()) -> None:
        """The model rewrites the top lines of `code` (default: the furthest state so far)."""
        if not hasattr(self.model, "complete"):
            return
        if code is None:
            code = self.best[1] if self.best[0] > self.start_fitness else self.task.code
        self.lines_done.add(code)
        messages = self.conversation(code)
        if not self.readable(messages):
            return
        # another state's own lines: the start's line numbers need not hold there
        top = [n for n, _ in self.ranking] if code == self.task.code else self.own_ranking(code)
        n = self.cfg.line_samples
        starts = [(f"REPL {k} >>>", f"line {k}", n) for k in top[: self.cfg.top_lines]]
        starts += [(f"ADDL {k + 1} >>>", f"a line after {k}", n) for k in top[: self.cfg.add_lines]]
        # and lines the model places itself: a lost line's place is often no suspect line's neighbour
        starts += [(op, f"{op} at a line it picks", self.cfg.free_samples) for op in ("REPL", "ADDL")
                   if self.cfg.free_samples]
        # a model that takes asks together decodes them side by side; one that does not, one by one
        for batch in line_batches(starts, self.cfg.line_batch if hasattr(self.model, "complete_each") else 1):
            total = sum(n for *_, n in batch)
            # guarded per sample, not per call: 8 free samples after a call of 4 ran MBPP tasks to
            # 31-32 s of a 30 s budget on a machine that decodes at 25 ms a token
            if self.over() or self.elapsed() + 1.2 * self.line_s * total > self.cfg.seconds:
                raise _Stop()
            self.on_event(f"model · {', '.join(where for _, where, _ in batch)} · {total} rewrites")
            t = time.monotonic()
            replies = complete_each(self.model, messages, [(prefix, n) for prefix, _, n in batch], self.cfg.temperature)
            self.line_s = (time.monotonic() - t) / max(total, 1)  # seconds per sample
            for text in dict.fromkeys(text for texts in replies for text in texts):
                cmd = parse(text)
                if isinstance(cmd, ParseError):
                    continue
                new = EditorState.from_code(code).apply(cmd)
                if isinstance(new, EditorState) and self.seen.fresh(new.to_code()):
                    self.check(new.to_code(), "model·line", commands + (str(cmd),))

    def own_ranking(self, code: str) -> list[int]:
        """A checked state's lines, most suspect first, from its own run (no test run spent)."""
        r = self.cache[code]
        return [n for n, _ in rank(code, None, r, hints_from_feedback(r.feedback).undefined)]

    def conversation(self, code: str) -> list[dict[str, str]]:
        """The model's first view of a state checked before (what `run_episode` starts from too)."""
        state = EditorState.from_code(code).render(self.cache[code].feedback)
        return new_conversation(replace(self.task, code=code), state)

    def readable(self, messages,
                 skipped: str = "model · skipped: it could not read this code within the time left") -> bool:
        """The model can read `messages` and reply within the wall budget: QuixBugs' `wrap` takes 24 s
        to read, estimated at 21-24 s (1.2x for that), then 1.5 s for 4 lines (2 s allowed)."""
        read, left = getattr(self.model, "read_seconds", None), self.cfg.seconds - self.elapsed()
        # the estimate itself reads a few dozen tokens: not asked for when no reply could fit anyway
        if read is None or left > 2.0 and 1.2 * read(messages) + 2.0 < left:
            return True
        self.on_event(skipped)
        return False

    def episode(self, i: int) -> None:
        start = self.best[1] if self.best[0] > self.start_fitness and self.cfg.restart == "best" else self.task.code
        task = replace(self.task, code=start)
        if not self.readable(self.conversation(start)):
            return
        temperature = 0.0 if i == 0 else self.cfg.temperature
        played: list = []  # this episode's turns

        def no_time(messages) -> bool:  # the model loops: the same command twice, the second changing
            # nothing (30% of all turns did); or a turn begun now would end past the wall budget, by 1.5 times
            # the last turn's time (a slow test run, a long reply) or by the read of this turn's own prompt:
            # after an edit the model reads the new state afresh, and on QuixBugs' longest prompts that turn
            # took 4.7-6.3 s where the one before, from the cache, took 0.25 s (35.3 s of a 30 s budget)
            stuck = len(played) > 1 and (played[-1].text, played[-1].code) == (played[-2].text, played[-2].code)
            if stuck or self.over() or self.elapsed() + 1.5 * self.turn_s > self.cfg.seconds:
                return True
            return bool(played) and not self.readable(
                messages, f"model · episode {i + 1} · stopped: its next turn would end past the time left")

        def progress(turn, ep):
            played.append(turn)
            self.turn_s = turn.seconds  # the model's reply and the test run: the next turn's guard
            cmd = turn.text.strip().split(" >>>")[0][:40]
            self.on_event(f"model · episode {i + 1} · turn {ep.turn} · {cmd} · {turn.tests_passed}/{turn.tests_total} tests pass")

        try:
            turns = min(self.cfg.greedy_turns, self.cfg.max_turns) if i == 0 else self.cfg.max_turns
            traj = run_episode(task, lambda m: self.model(m, temperature=temperature),
                               check=lambda code: self.check(code, "model·episode"), max_turns=turns,
                               stop_when_solved=True, on_turn=progress, should_stop=no_time, redraws=self.cfg.redraws,
                               redraw=lambda m: self.model(m, temperature=self.cfg.temperature))
        except (_Stop, OutOfTime):
            traj = None
        if traj is not None:
            self.episodes.append(traj)
        if self.fix and self.cfg.stop_at_fix or self.over():
            raise _Stop()

    # -- the schedule ----------------------------------------------------------------------------
    def run(self) -> RepairResult:
        # no test run and no model reply outlasts the fix's budget: a model that takes a deadline stops
        # decoding there (OutOfTime) where the guards below misjudged a reply's or a read's time
        end = self.t0 + self.cfg.seconds
        if hasattr(self._raw_check, "deadline"):
            self._raw_check.deadline = end
        if hasattr(self.model, "deadline"):
            self.model.deadline = end
        try:
            return self._run()
        finally:
            if hasattr(self.model, "deadline"):
                self.model.deadline = None  # the model may serve other work after this fix

    def _run(self) -> RepairResult:
        first = self._raw_check(self.task.code)
        getattr(self._raw_check, "learn", lambda r: None)(first)
        self.runs, self.tried["start"] = 1, 1
        self.cache[self.task.code] = first
        self.novel(first)
        if first.code_status == "invalid":
            return self._result("invalid", first.feedback, first)
        if first.passed:
            return self._result("already_passing", "The tests already pass; nothing to fix.", first)
        self.start_fitness, self.start_reach = fitness(first), reach(first)
        self.best = (self.start_fitness, self.task.code)
        spec = None
        if self.run_tests is not None and {"search", "lines"} & set(self.cfg.proposers):
            spec = spectrum(self.task.code, self.task.tests, self.run_tests, first)
            self.runs += spec.test_runs if spec else 0
            self.tried["localize"] = spec.test_runs if spec else 0
        elif first.coverage is not None and len(first.coverage) == len(first.tests):
            spec = Spectrum([(t.status == "pass", set(lines)) for t, lines in zip(first.tests, first.coverage)
                             if t.status != "not run"], 0)  # a skipped test ran nothing
        hints = _hints(first)
        self.start_undefined = hints.undefined
        self.ranking = rank(self.task.code, spec, first, hints.undefined)
        self.singles = iter(self._singles(self.task.code, [n for n, _ in self.ranking], first))
        p = self.cfg.proposers
        use_model = self.model is not None
        steps: list[Callable[[], None]] = []
        if "search" in p:
            steps += [self.search_syntax, lambda: self.search_singles(self.cfg.search_first, self.cfg.search_first_s),
                      lambda: self.search_chains(keep=self.cfg.runs - self.cfg.search_first,
                                                 seconds=self.cfg.chains_first_s, lines=False)]
        if use_model and "lines" in p:
            steps.append(self.line_proposals)
        if use_model and "episodes" in p:
            steps.append(lambda: self.episode(0))
        # the sampled episodes' turns are kept from the search (its chains spent all 400 runs on 46 of 57 MBPP misses)
        keep = (self.cfg.episodes - 1) * self.cfg.max_turns if use_model and "episodes" in p else 0
        if "search" in p:
            steps += [lambda: self.search_singles(self.cfg.runs, keep=keep), lambda: self.search_chains(keep)]
        if use_model and "episodes" in p:
            steps += [lambda i=i: self.episode(i) for i in range(1, self.cfg.episodes)]
        if "search" in p and keep:
            steps += [lambda: self.search_singles(self.cfg.runs), self.search_chains]  # what the episodes left
        try:
            for step in steps:
                step()
                if self.fix and self.cfg.stop_at_fix:
                    break
        except (_Stop, OutOfTime):
            pass
        if self.cancelled():
            return self._result("cancelled", "Cancelled; nothing was changed.", first)
        if self.fix is None:
            what = f"{self.runs} test runs, {self.elapsed():.0f} s"
            return self._result("not_fixed", f"No fix found ({what}); nothing was changed.", first)
        return self._polished(first)

    def _polished(self, first: VerifyResult) -> RepairResult:
        """The fix with every changed block it does not need undone (up to `polish_runs` runs)."""
        code, proposer, _ = self.fix
        budget = self.runs + self.cfg.polish_runs
        if hasattr(self._raw_check, "deadline"):  # a fix found near the end still gets its runs, in a tenth more
            self._raw_check.deadline = time.monotonic() + 0.1 * self.cfg.seconds

        def passes(trial: str) -> bool | None:
            if self.runs >= budget or not self.seen.fresh(trial):
                return None
            self.runs += 1
            r = self.cache[trial] = self._raw_check(trial)
            return r.passed and not audit(self.task.code, trial, self.task.tests)
        code = smallest(self.task.code, code, passes)
        cmds = [str(c) for c in edit_script(self.task.code, code) if c.op != "EXIT"]
        final = self.cache.get(code) or self._raw_check(code)
        n = len(cmds)
        return self._result("fixed", f"Fixed by {proposer} ({n} edit{'s' * (n != 1)}) after {self.at['runs']} test "
                                     f"runs, {self.at['seconds']:.1f} s; {final.tests_total} test(s) pass.",
                            first, code=code, proposer=proposer, commands=cmds, final=final)

    def _result(self, status: str, message: str, first: VerifyResult, **kw) -> RepairResult:
        return RepairResult(status, kw.pop("code", self.task.code), message, runs=self.runs,
                            seconds=round(self.elapsed(), 2), first=first, tried=dict(self.tried),
                            rejected=list(self.rejected), ranking=list(getattr(self, "ranking", [])),
                            episodes=list(self.episodes), at=dict(self.at), **kw)


def repair(task: Task, check: Callable[[str], VerifyResult], cfg: RepairConfig | None = None, **kw) -> RepairResult:
    """One fix: `Repair(task, check, cfg, **kw).run()` (the module docstring)."""
    return Repair(task, check, cfg, **kw).run()


