"""The repair engine (dsl/repair.py) and its localization (dsl/localize.py), on the real sandbox.
Model proposals come from scripted policies (`scripted:FILE` in a real model process), named so."""
from __future__ import annotations

import pytest

from dsl import RepairConfig, Task, TaskCheck, Verifier, repair
from dsl.localize import instrument, ochiai, rank, single_tests, spectrum


@pytest.fixture(scope="module")
def verifier():
    v = Verifier()
    yield v
    v.close()


def run(task: Task, v: Verifier, cfg: RepairConfig | None = None, **kw):
    check = TaskCheck(task, v)
    return repair(task, check, cfg or RepairConfig(proposers=("search",)), run_tests=check.tests, **kw)


def with_script(task: Task, v: Verifier, tmp_path, commands: str, proposer: str):
    """The engine with one model proposer, played by a scripted policy in a real model process."""
    from server.model_process import ModelProcess
    script = tmp_path / "script.txt"
    script.write_text(commands)
    model = ModelProcess(f"scripted:{script}")
    try:
        return run(task, v, RepairConfig(proposers=(proposer,)), model=model)
    finally:
        model.close()


def test_instrumented_code_reports_the_lines_each_test_runs(verifier):
    code = "def f(x):\n    if x > 0:\n        return 1\n    return 0\n"
    marked = instrument(code)
    tests = "assert f(5) == 1\nassert f(-5) == 1"
    [one, two] = single_tests(tests)
    assert one == "assert f(5) == 1" and two == "assert f(-5) == 1"
    spec = spectrum(code, tests, lambda c, t: verifier.verify(c, t))
    assert spec.runs == [(True, {1, 2, 3}), (False, {1, 2, 4})]
    scores = ochiai(spec)
    assert scores[4] == 1.0 and scores[2] < 1.0 and 3 not in scores
    assert marked is not None and instrument("def f(:\n") is None


def test_single_tests_keep_setup_and_one_test_function_each():
    tests = "import math\n\ndef helper():\n    return 2\n\ndef test_a():\n    assert helper() == 2\n\ndef test_b():\n    assert 1\n"
    a, b = single_tests(tests)
    assert "def helper" in a and "def test_a" in a and "def test_b" not in a
    assert "import math" in b and "def test_b" in b and "def test_a" not in b


def test_rank_puts_the_line_only_failing_tests_run_first(verifier):
    code = "def f(x):\n    y = x * 2\n    if x > 10:\n        return y - 1\n    return y\n"
    tests = "assert f(1) == 2\nassert f(2) == 4\nassert f(20) == 40"
    first = verifier.verify(code, tests)
    spec = spectrum(code, tests, lambda c, t: verifier.verify(c, t), first)
    order = [n for n, _ in rank(code, spec, first)]
    assert order[0] == 4 and 1 not in order  # the `def` line is never a suspect


def test_search_fixes_a_one_token_bug_and_reports_who_and_when(verifier):
    task = Task("t", "def f(a, b):\n    return a - b\n", "assert f(1, 2) == 3\nassert f(0, 0) == 0")
    events = []
    res = run(task, verifier, on_event=events.append)
    assert res.status == "fixed" and res.proposer == "search" and res.commands == ["REPW 2 >>>- >>>+"]
    assert res.code == "def f(a, b):\n    return a + b\n" and res.final.passed
    assert res.at["runs"] <= res.runs <= 400 and res.tried["start"] == 1
    assert any("found a fix" in e for e in events)


def test_two_bugs_are_fixed_by_a_chain_guided_by_tests_passing(verifier):
    task = Task("t", "def f(x):\n    y = x - 1\n    return y * 3\n",
                "assert f(0) == 0\nassert f(1) == 2\nassert f(2) == 4")
    res = run(task, verifier)
    assert res.status == "fixed" and res.proposer.startswith("search·") and res.final.passed
    assert res.code == "def f(x):\n    y = x + 0\n    return y * 2\n" or len(res.commands) >= 2


def test_a_chain_goes_on_from_an_edit_whose_error_comes_from_a_later_line(verifier):
    """Neither edit alone passes a test: mending line 2 (`R` undefined) only moves the error to
    line 4 (`ct`). The state whose error comes later is expanded, and its own edit finishes the fix.
    (A stray `p *= R` now gets `p = 1` from the lost-initialization family first.)"""
    task = Task("t", "def f(n):\n    print(R)\n    cnt = 0\n    ct += n\n    return cnt\n",
                "assert f(2) == 2\nassert f(3) == 3")
    res = run(task, verifier)
    assert res.status == "fixed" and res.proposer == "search·2" and res.final.passed
    assert "REPW 4 >>>ct >>>cnt" in res.commands and "    cnt += n" in res.code.splitlines()


def test_chains_expand_states_that_behave_anew_before_lookalikes(verifier):
    """Three bugs, no test passing until all are fixed: a stray line, a wrong bound, a lost return.
    Once the stray line is gone, nearly every edit leaves the function returning None as before;
    the one that returns a value behaves anew and is expanded first (without that: not fixed in
    400 runs)."""
    task = Task("t", "def digits_to_int(ds):\n    ds.sort()\n    total += step\n    num = ds[0]\n"
                     "    for i in range(2, len(ds)):\n        num = num * 10 + ds[i]\n",
                "assert digits_to_int([3, 1, 2]) == 123\nassert digits_to_int([5, 4]) == 45\n"
                "assert digits_to_int([9, 8, 7, 6]) == 6789")
    res = run(task, verifier)
    assert res.status == "fixed" and res.proposer == "search·3" and res.runs < 300
    assert sorted(res.commands) == ["ADDL 7 >>>    return num", "DELL 3", "REPW 5 >>>2 >>>1"]


def test_a_chain_goes_on_from_an_edit_whose_error_names_another_undefined_name(verifier):
    """`amth` -> `math` passes no more and raises from the same line, but now names `math`, which
    the import answers; then the lost `return` (MBPP's `tn_gp`: not chained before)."""
    task = Task("t", "def tn_gp(a, n, r):\n  tn = a * (amth.pow(r, n - 1))\n",
                "assert tn_gp(1, 5, 2) == 16\nassert tn_gp(1, 5, 4) == 256\nassert tn_gp(2, 6, 3) == 486")
    res = run(task, verifier)
    assert res.status == "fixed" and res.proposer == "search·3" and res.final.passed
    assert sorted(res.commands) == ["ADDL 1 >>>import math", "ADDL 3 >>>  return tn",
                                    "REPL 2 >>>  tn = a * (math.pow(r, n - 1))"]


def test_a_passing_edit_the_audit_flags_is_never_offered(verifier):
    """Deleting the guard makes the tests pass by exiting early; the audit rejects it."""
    task = Task("t", "import sys\ndef f(x):\n    return x\nsys.exit(0) if False else None\n",
                "assert f(1) == 2")
    res = run(task, verifier, RepairConfig(proposers=("search",), runs=60))
    assert not (res.status == "fixed" and "exit" in res.code)


def test_budgets_are_kept_and_a_hopeless_task_says_so(verifier):
    task = Task("t", "def f(x):\n    return 0\n", "assert f(1) == 'one'\nassert f(2) == 'two'")
    res = run(task, verifier, RepairConfig(proposers=("search",), runs=15))
    assert res.status == "not_fixed" and res.runs <= 15 and "nothing was changed" in res.message
    res = run(task, verifier, RepairConfig(proposers=("search",), seconds=0.01))
    assert res.status == "not_fixed" and res.seconds < 5


def test_already_passing_and_invalid_tests_are_told_apart(verifier):
    ok = Task("t", "def f():\n    return 1\n", "assert f() == 1")
    assert run(ok, verifier).status == "already_passing"
    bad = Task("t", "def f():\n    return 1\n", "assert f( == 1")
    assert run(bad, verifier).status == "invalid"
    with pytest.raises(ValueError, match="unknown proposers"):
        repair(ok, TaskCheck(ok, verifier), RepairConfig(proposers=("magic",)))


def test_a_fix_with_edits_it_does_not_need_is_shrunk_scripted_policy(verifier, tmp_path):
    """An episode that fixes the bug and also rewrites a harmless line: the polish undoes the rest."""
    task = Task("t", "def f(a, b):\n    y = 0\n    return a - b\n", "assert f(1, 2) == 3")
    res = with_script(task, verifier, tmp_path, "REPL 2 >>>    y = 1  # harmless\nREPW 3 >>>- >>>+\n", "episodes")
    assert res.status == "fixed" and res.proposer == "model·episode"
    assert res.code == "def f(a, b):\n    y = 0\n    return a + b\n" and res.commands == ["REPW 3 >>>- >>>+"]
    assert len(res.episodes) == 1 and len(res.episodes[0].turns) == 2


def test_line_proposals_rewrite_the_suspect_lines_scripted_policy(verifier, tmp_path):
    task = Task("t", "def f(xs):\n    return xs\n", "assert f([1, 3, 2]) == [3, 2, 1]")
    res = with_script(task, verifier, tmp_path, "REPL 2 >>>    return sorted(xs)[::-1]\n", "lines")
    assert res.status == "fixed" and res.proposer == "model·line" and res.tried == {"start": 1, "localize": 1,
                                                                                        "model·line": 1}


def test_line_proposals_add_a_lost_line_after_a_suspect_line_scripted_policy(verifier, tmp_path):
    """A deleted line no edit of the code can bring back: the model writes it (`ADDL k+1 >>>`)."""
    task = Task("t", "def f(xs):\n    out = []\n    return out\n", "assert f([1, 2]) == [2, 4]")
    script = "ADDL 3 >>>    out = [2 * x for x in xs]\n"
    check = TaskCheck(task, verifier)
    from server.model_process import ModelProcess
    (tmp_path / "s.txt").write_text(script)
    model = ModelProcess(f"scripted:{tmp_path / 's.txt'}")
    try:
        off = repair(task, check, RepairConfig(proposers=("lines",), add_lines=0, free_samples=0), model=model,
                     run_tests=check.tests)
        res = repair(task, check, RepairConfig(proposers=("lines",), free_samples=0), model=model,
                     run_tests=check.tests)
    finally:
        model.close()
    assert off.status == "not_fixed"  # add_lines = 0 (and no line placed by the model): no line is added
    assert res.status == "fixed" and res.proposer == "model·line" and res.commands == [script.strip()]


def test_line_proposals_write_a_line_where_the_model_places_it_scripted_policy(verifier, tmp_path):
    """`free_samples`: `ADDL` forced and the place left to the model, for a lost line whose place
    is no suspect line's neighbour (here none is asked for: `add_lines` = 0)."""
    task = Task("t", "def f(xs):\n    out = []\n    return out\n", "assert f([1, 2]) == [2, 4]")
    script = "ADDL 3 >>>    out = [2 * x for x in xs]\n"
    check = TaskCheck(task, verifier)
    from server.model_process import ModelProcess
    (tmp_path / "s.txt").write_text(script)
    model = ModelProcess(f"scripted:{tmp_path / 's.txt'}")
    try:
        off = repair(task, check, RepairConfig(proposers=("lines",), add_lines=0, free_samples=0), model=model,
                     run_tests=check.tests)
        res = repair(task, check, RepairConfig(proposers=("lines",), add_lines=0), model=model, run_tests=check.tests)
    finally:
        model.close()
    assert off.status == "not_fixed"
    assert res.status == "fixed" and res.proposer == "model·line" and res.commands == [script.strip()]


def test_line_proposals_on_the_mended_state_use_its_line_numbers_scripted_policy(verifier, tmp_path):
    """The start does not compile; the search's mending (line 3 deleted) is the furthest state, and
    the model rewrites that state's most suspect line, line 2 (the start's was line 4, which the
    mended code no longer has)."""
    task = Task("t", "def per(a):\n  return round(n1/n,2)\n  if (x >= y):\n  return p\n",
                "assert per(10) == 40\nassert per(5) == 20")
    (tmp_path / "s.txt").write_text("REPL 2 >>>  p = 4*a\n")
    check = TaskCheck(task, verifier)
    from server.model_process import ModelProcess
    model = ModelProcess(f"scripted:{tmp_path / 's.txt'}")
    try:
        res = repair(task, check, RepairConfig(proposers=("search", "lines"), top_lines=1), model=model,
                     run_tests=check.tests)
    finally:
        model.close()
    assert res.status == "fixed" and res.proposer == "model·line"
    assert res.code == "def per(a):\n  p = 4*a\n  return p\n"


def test_line_proposals_also_rewrite_chain_states_lines_scripted_policy(verifier):
    """`line_states` = N: the first N chain states the search expands get the model's line rewrites
    too (a state the search mended may lack a line only the model writes)."""
    class Lines:  # an in-process stand-in for a model: records the code it was shown
        def __init__(self):
            self.shown = []

        def complete(self, messages, prefix, n, temperature=0.7):
            self.shown.append(messages[-1]["content"].split("***")[0])
            return []

    task = Task("t", "def f(a, b):\n    c = a - b\n    d = c * 3\n    return d - e\n",
                "assert f(1, 2) == 'x'\nassert f(2, 2) == 'y'")  # an error, then states failing by assertion
    seen = []
    for states in (0, 2):
        model = Lines()
        run(task, verifier, RepairConfig(proposers=("search", "lines"), top_lines=1, line_states=states),
            model=model)
        seen.append(len(set(model.shown)))
    assert seen == [1, 3]


def test_the_searchs_chains_come_before_the_model_scripted_policy(verifier):
    """`chains_first_s`: a two-edit fix the search's chains find in a moment is found before the
    model is asked anything; with no time for chains first, the model is asked before it."""
    class Lines:  # an in-process stand-in for a model: records that it was asked
        def __init__(self):
            self.asked = 0

        def complete(self, messages, prefix, n, temperature=0.7):
            self.asked += 1
            return []

    task = Task("t", "def f(x):\n    y = x - 1\n    return y * 3\n",
                "assert f(0) == 0\nassert f(1) == 2\nassert f(2) == 4")
    asked = []
    for first in (2.0, 0.0):
        model = Lines()
        res = run(task, verifier, RepairConfig(proposers=("search", "lines"), chains_first_s=first), model=model)
        assert res.status == "fixed" and res.proposer.startswith("search·")
        asked.append(model.asked)
    assert asked[0] == 0 and asked[1] > 0


def test_the_search_leaves_the_sampled_episodes_their_turns_scripted_policy(verifier, tmp_path):
    """A bug the search cannot fix, with edits enough to spend any budget: the search stops short
    of the sampled episodes' share (2 episodes x 4 turns of 60 runs), and they all play."""
    task = Task("t", "def f(x, y):\n    a = x * 3 - y\n    b = a + 7 * y\n    return a - b\n",
                "assert f(1, 2) == 'one'")
    (tmp_path / "s.txt").write_text("".join(f"REPL 4 >>>    return {n}\n" for n in range(4)))
    check = TaskCheck(task, verifier)
    from server.model_process import ModelProcess
    model = ModelProcess(f"scripted:{tmp_path / 's.txt'}")
    try:
        res = repair(task, check, RepairConfig(proposers=("search", "episodes"), runs=60, search_first=10,
                                               episodes=3, max_turns=4, restart="fresh"), model=model,
                     run_tests=check.tests)
    finally:
        model.close()
    assert res.status == "not_fixed" and res.runs == 60
    assert [len(e.turns) for e in res.episodes] == [4, 4, 4]
    assert res.tried["search"] + res.tried.get("search·2", 0) > 30  # and the search had the rest


def test_the_greedy_episode_stops_at_its_own_turn_cap_scripted_policy(verifier, tmp_path):
    task = Task("t", "def f(a, b):\n    return a - b\n", "assert f(1, 2) == 3")
    script = "".join(f"REPL 2 >>>    return a {op} b\n" for op in ("*", "/", "%")) + "REPW 2 >>>% >>>+\n"
    check = TaskCheck(task, verifier)
    from server.model_process import ModelProcess
    (tmp_path / "s.txt").write_text(script)
    model = ModelProcess(f"scripted:{tmp_path / 's.txt'}")
    try:
        capped = repair(task, check, RepairConfig(proposers=("episodes",), episodes=1, greedy_turns=3), model=model)
        full = repair(task, check, RepairConfig(proposers=("episodes",), episodes=1), model=model)
    finally:
        model.close()
    assert capped.status == "not_fixed" and len(capped.episodes[0].turns) == 3
    assert full.status == "fixed" and len(full.episodes[0].turns) == 4


def test_an_episode_that_repeats_an_edit_to_no_effect_ends_scripted_policy(verifier, tmp_path):
    """A model in a loop (the same command again, changing nothing: 30% of the shipped model's turns
    on MBPP were) gives its turns back: the episode ends at the repeat. The same command that does
    change the code again is played on."""
    task = Task("t", "def f(a, b):\n    return a - b\n", "assert f(1, 2) == 3")
    check = TaskCheck(task, verifier)
    from server.model_process import ModelProcess
    loop = "REPL 2 >>>    return a * b\n" * 3 + "REPW 2 >>>* >>>+\n"
    grow = "ADDL 2 >>>    a = a\n" * 3 + "REPW 5 >>>- >>>+\n"
    played = []
    for script in (loop, grow):
        (tmp_path / "s.txt").write_text(script)
        model = ModelProcess(f"scripted:{tmp_path / 's.txt'}")
        try:
            played.append(repair(task, check, RepairConfig(proposers=("episodes",), episodes=1), model=model))
        finally:
            model.close()
    assert played[0].status == "not_fixed" and len(played[0].episodes[0].turns) == 2
    assert played[1].status == "fixed" and len(played[1].episodes[0].turns) == 4


def test_code_that_does_not_compile_is_mended_without_test_runs_first(verifier):
    from dsl.syntax_fix import error_line, syntax_fixes
    code = "def f(x):\n    y = x + 1\n        if y > 3:\n    for z in w:\n    return y\n"
    assert error_line(code) == 3
    fixes = syntax_fixes(code)
    assert fixes and all(error_line(c) == 0 for c, _ in fixes)
    assert ("def f(x):\n    y = x + 1\n    return y\n", ("DELL 3", "DELL 3")) in fixes
    task = Task("t", code, "assert f(1) == 2\nassert f(5) == 6")
    res = run(task, verifier)
    assert res.status == "fixed" and res.code == "def f(x):\n    y = x + 1\n    return y\n"
    assert error_line("def f(x):\n    return x\n") == 0 and syntax_fixes("def f(x):\n    return x\n") == []
