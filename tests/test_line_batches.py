"""Line proposals asked of the model in batches (dsl/repair.py's `complete_each`): a model that takes
asks together gets them in groups of `line_batch` samples, one that does not gets one ask a call,
and the model process forwards a batch whole (its worker falling back for backends without it).
The models here are in-process stand-ins or scripted policies, named so; the real llama.cpp
side-by-side decoding is tests/test_parallel_sampling.py's."""
from __future__ import annotations

import pytest

from dsl import RepairConfig, Task, TaskCheck, Verifier, repair
from dsl.model_asks import line_batches


@pytest.fixture(scope="module")
def verifier():
    v = Verifier()
    yield v
    v.close()


def test_asks_are_grouped_in_order_up_to_the_batch_and_a_larger_ask_goes_alone():
    starts = [("REPL 2 >>>", "line 2", 4), ("REPL 3 >>>", "line 3", 4), ("ADDL 3 >>>", "a line after 2", 4),
              ("REPL", "free", 8), ("ADDL", "free", 20), ("REPL 4 >>>", "line 4", 1)]
    groups = [[n for *_, n in g] for g in line_batches(starts, 16)]
    assert groups == [[4, 4, 4], [8], [20], [1]]
    assert [s for g in line_batches(starts, 16) for s in g] == starts
    assert [len(g) for g in line_batches(starts, 1)] == [1] * 6


def test_a_model_that_takes_asks_together_gets_them_in_batches_and_its_fix_is_found_scripted_policy(verifier):
    class Together:  # an in-process stand-in: line 3's rewrites hold the fix
        calls: list[list[tuple[str, int]]] = []

        def complete_each(self, messages, asks, temperature=0.7):
            Together.calls.append(list(asks))
            return [[f"{p}    return y + 1" if p == "REPL 3 >>>" else f"{p}    y = {i}" for i in range(n)]
                    for p, n in asks]

        def complete(self, messages, prefix, n, temperature=0.7):
            raise AssertionError("asked one at a time")

    task = Task("t", "def f(x):\n    y = x\n    return y - 1\n", "assert f(1) == 2\nassert f(5) == 6")
    check = TaskCheck(task, verifier)
    res = repair(task, check, RepairConfig(proposers=("lines",), top_lines=3, line_samples=4, add_lines=2,
                                           free_samples=8, line_batch=16), model=Together(), run_tests=check.tests)
    assert res.status == "fixed" and res.proposer == "model·line" and "    return y + 1" in res.code
    first = Together.calls[0]
    assert sum(n for _, n in first) <= 16 and ("REPL 3 >>>", 4) in first  # the suspect lines' asks, together


def test_the_model_process_forwards_a_batch_and_its_worker_answers_for_a_backend_without_one_scripted_policy(tmp_path):
    from dsl import Episode, new_conversation
    from server.model_process import ModelProcess
    script = tmp_path / "script.txt"
    script.write_text("REPL 2 >>>    return a + b\nREPL 2 >>>    return b + a\nADDL 3 >>>    pass\n")
    task = Task("add", "def add(a, b):\n    return a - b", "assert add(2, 5) == 7")
    model = ModelProcess(f"scripted:{script}")
    try:
        got = model.complete_each(new_conversation(task, Episode(task).reset()),
                                  [("REPL 2 >>>", 2), ("ADDL 3 >>>", 3), ("DELL", 1)])
    finally:
        model.close()
    assert got == [["REPL 2 >>>    return a + b", "REPL 2 >>>    return b + a"], ["ADDL 3 >>>    pass"], []]
