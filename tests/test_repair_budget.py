"""The repair engine's wall budget (dsl/repair.py): no model turn, line sample or read begins that
would end past it. Stand-in models run in-process and sleep as a slow model would, named so."""
from __future__ import annotations

import pytest

from dsl import RepairConfig, Task, TaskCheck, Verifier, repair


@pytest.fixture(scope="module")
def verifier():
    v = Verifier()
    yield v
    v.close()


def run(task: Task, v: Verifier, cfg: RepairConfig, **kw):
    check = TaskCheck(task, v)
    return repair(task, check, cfg, run_tests=check.tests, **kw)


def test_no_model_turn_begins_that_would_end_past_the_wall_budget_slow_scripted_policy(verifier):
    """A model whose turns take 1 s and a 3 s budget: a third turn, guarded at 1.5 times the last
    turn's time, would end past it, so it is not begun (it was: Fix ran up to 2 s over its 30 s on
    MBPP)."""
    import time as clock

    class SlowModel:  # an in-process stand-in for a model: each turn takes 1 s
        def __call__(self, messages, temperature=None):
            clock.sleep(1.0)
            return f"REPL 2 >>>    return {len(messages)}"

    task = Task("t", "def f(x):\n    return x\n", "assert f(1) == 'one'")
    check = TaskCheck(task, verifier)
    res = repair(task, check, RepairConfig(proposers=("episodes",), seconds=3.0, episodes=1, max_turns=50),
                 model=SlowModel())
    assert res.status == "not_fixed" and len(res.episodes[0].turns) == 2 and res.seconds < 3.0

    class SlowLines:  # the same for line proposals: each line's rewrites take 1 s
        calls = 0

        def complete(self, messages, prefix, n, temperature=0.7):
            SlowLines.calls += 1
            clock.sleep(1.0)
            return [f"{prefix}    a = {SlowLines.calls}"]

    task = Task("t", "def f(x):\n    a = x\n    b = a\n    c = b\n    return c\n", "assert f(1) == 'one'")
    check = TaskCheck(task, verifier)
    res = repair(task, check, RepairConfig(proposers=("lines",), seconds=2.5, top_lines=4, line_samples=1,
                                           add_lines=0, free_samples=0), model=SlowLines(), run_tests=check.tests)
    assert res.status == "not_fixed" and SlowLines.calls == 2 and res.seconds < 2.5

    class SlowSamples:  # each sample takes 0.25 s: a call for 4 samples, 1 s; for 8, 2 s
        calls = 0

        def complete(self, messages, prefix, n, temperature=0.7):
            SlowSamples.calls += 1
            clock.sleep(0.25 * n)
            return [f"{prefix}    a = {SlowSamples.calls}"]

    # two lines' 4 samples (1 s a call) fit 3.5 s, 8 free samples (2 s more) do not: judged by the last call alone, they began
    res = repair(task, check, RepairConfig(proposers=("lines",), seconds=3.5, top_lines=2, add_lines=0,
                                           line_samples=4, free_samples=8), model=SlowSamples(), run_tests=check.tests)
    assert res.status == "not_fixed" and SlowSamples.calls == 2 and res.seconds < 3.5


def test_a_cheap_turn_does_not_let_a_costly_read_begin_past_the_budget_slow_scripted_policy(verifier):
    """The model's turns from its cache are cheap, but a turn that must read a long new state is not
    (QuixBugs' `shortest_path_length`: 0.25 s, then 4.7-6.3 s; 35.3 s of a 30 s budget). Each turn
    is priced by the read of its own prompt, not by the turn before it."""
    import time as clock

    class CostlyRead:  # an in-process stand-in: 0.1 s a turn, then 9 s from the sixth turn on
        def read_seconds(self, messages):
            return 0.1 if len(messages) < 12 else 9.0

        def __call__(self, messages, temperature=None):
            clock.sleep(self.read_seconds(messages))
            return f"REPL 2 >>>    return {len(messages)}"

    task = Task("t", "def f(x):\n    return x\n", "assert f(1) == 'one'")
    events = []
    # judged by the turn before (0.1 s), the sixth turn would begin at about 1 s and end past 10 s;
    # cheap turns go on until 7.9 s, room enough for five on a loaded machine
    res = repair(task, TaskCheck(task, verifier), RepairConfig(proposers=("episodes",), seconds=10.0, episodes=1),
                 model=CostlyRead(), on_event=events.append)
    assert res.status == "not_fixed" and len(res.episodes[0].turns) == 5 and res.seconds < 10.0
    assert any("episode 1 · stopped: its next turn would end past the time left" in e for e in events)


def test_a_model_that_could_not_read_the_code_in_time_is_not_asked_slow_scripted_policy(verifier):
    """A conversation the model would take longer to read than the budget has left (QuixBugs' `wrap`:
    22 s on 2 cores): neither line proposals nor episodes begin, and the search still runs."""
    class SlowReader:  # an in-process stand-in for a model that reads 40 s
        asked = 0

        def read_seconds(self, messages):
            return 40.0

        def __call__(self, messages, temperature=None):
            SlowReader.asked += 1
            return "EXIT"

        def complete(self, messages, prefix, n, temperature=0.7):
            SlowReader.asked += 1
            return []

    task = Task("t", "def f(a, b):\n    return a - b\n", "assert f(1, 2) == 3")
    events = []
    res = run(task, verifier, RepairConfig(), model=SlowReader(), on_event=events.append)
    assert res.status == "fixed" and res.proposer == "search" and SlowReader.asked == 0
    hopeless = Task("t", "def f(a, b):\n    return a - b\n", "assert f(1, 2) == 'three'")
    res = run(hopeless, verifier, RepairConfig(runs=50), model=SlowReader(), on_event=events.append)
    assert res.status == "not_fixed" and SlowReader.asked == 0 and res.episodes == []
    assert any("could not read" in e for e in events)


def test_a_reply_that_would_run_past_the_budget_stops_at_the_deadline_the_engine_gives_slow_scripted_policy(verifier):
    """The guards judge a turn by the turns before it; a reply they misjudge (a runaway sample, a
    loaded machine) is stopped by the model itself at the deadline the engine hands it: the fix's
    end. A stand-in whose second reply would take 20 s, which honours a deadline as the llama.cpp
    backend does (sleeping to it, then OutOfTime)."""
    import time as clock

    from dsl import OutOfTime

    class LateReply:
        deadline = None
        given: list = []

        def __call__(self, messages, temperature=None):
            self.given.append(self.deadline)
            if len(messages) > 2:  # the second turn on
                clock.sleep(20.0 if self.deadline is None else max(0.0, self.deadline - clock.monotonic()))
                raise OutOfTime("the fix's time ran out")
            return "REPL 2 >>>    return 2"

    model = LateReply()
    task = Task("t", "def f(x):\n    return x\n", "assert f(1) == 'one'")
    t0 = clock.monotonic()
    res = repair(task, TaskCheck(task, verifier), RepairConfig(proposers=("episodes",), seconds=3.0, episodes=1),
                 model=model)
    assert res.status == "not_fixed" and res.seconds < 3.5 and clock.monotonic() - t0 < 4.0
    assert len(model.given) == 2 and model.given[0] == pytest.approx(t0 + 3.0, abs=0.5)
    assert model.deadline is None  # the model may serve other work after the fix


def test_no_test_run_outlasts_the_deadline_however_close_it_is(verifier):
    """A run begun just before a fix's end gets what is left (at least `MIN_RUN_S`, a sandbox run's
    start), not a fixed 0.2 s, which let a hanging candidate begun at the end run 0.2 s past it."""
    import time as clock

    from dsl.task_check import MIN_RUN_S
    task = Task("t", "def f(x):\n    while x:\n        pass\n    return x\n", "assert f(0) == 0\nassert f(1) == 1")
    check = TaskCheck(task, verifier)
    check.deadline = clock.monotonic() - 1.0
    looping = check(task.code)
    assert looping.timed_out and not looping.passed and looping.wall_s < 1.0
    assert check._timeout(5.0) == MIN_RUN_S
    check.deadline = clock.monotonic() + 2.0
    assert 1.5 < check._timeout(5.0) <= 2.0
