"""Line proposals decoded side by side (server/backends/llama_batch.py) on the shipped model through
real llama.cpp: the replies are what one-after-another decoding would draw from (the greedy one the
same, every one a command the code grammar allows), reproducible by seed, and a conversation's
cached prompt never leaks into the next one's replies."""
from __future__ import annotations

import pytest

from dsl import Episode, Task, can_end, lines_in_view, new_conversation
from server.defaults import DEFAULT_MODEL

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="no shipped model at models/default/coedit.gguf")
pytest.importorskip("llama_cpp")

ADD = Task("add", "def add(a, b):\n    return a - b", "assert add(2, 5) == 7\nassert add(0, 0) == 0")
MAX = Task("biggest", "def biggest(xs):\n    best = xs[0]\n    for x in xs:\n        if x < best:\n"
                      "            best = x\n    return best", "assert biggest([3, 9, 2]) == 9")


def _backend(parallel: bool, seed: int = 0):
    from server.backends import LlamaCppBackend
    return LlamaCppBackend(DEFAULT_MODEL, seed=seed, max_new_tokens=32, parallel=parallel)


def _messages(task: Task):
    return new_conversation(task, Episode(task).reset())


def test_side_by_side_replies_begin_with_the_start_obey_the_code_grammar_and_the_first_is_the_greedy_one():
    msgs = _messages(MAX)
    lines = lines_in_view(msgs[-1]["content"])
    side = _backend(True).complete(msgs, "REPL 4 >>>", 8, 1.0)
    greedy = _backend(False).complete(msgs, "REPL 4 >>>", 1)
    assert len(side) == 8 and side[0] == greedy[0]
    assert all(r.startswith("REPL 4 >>>") and can_end(r, lines) for r in side), side
    assert len(set(side)) > 1, side  # the other seven are draws, not the greedy line again


def test_side_by_side_replies_are_reproducible_by_seed():
    msgs = _messages(MAX)
    runs = [_backend(True, seed=5).complete(msgs, "ADDL 3 >>>", 6, 1.0) for _ in range(2)]
    assert runs[0] == runs[1]


def test_all_greedy_replies_are_one_reply_and_the_last_conversation_leaves_nothing_behind():
    """Sequence 0 keeps the last prompt for the next call; a second conversation that shares only
    its start (the system prompt) must be answered as a fresh backend answers it."""
    used = _backend(True)
    used.complete(_messages(MAX), "REPL 4 >>>", 4, 0.0)
    after = used.complete(_messages(ADD), "REPL 2 >>>", 3, 0.0)
    fresh = _backend(True).complete(_messages(ADD), "REPL 2 >>>", 3, 0.0)
    assert after == fresh and len(set(after)) == 1
    assert after[0] == _backend(False).complete(_messages(ADD), "REPL 2 >>>", 1)[0]


def test_a_reply_to_the_conversation_just_sampled_is_the_reply_a_fresh_backend_gives():
    """Side-by-side replies leave a reply's logits in the context. The next reply to the same
    conversation (the engine's greedy episode after line samples of its state) must read the
    prompt's last token again, not draw its first token from those logits."""
    used = _backend(True)
    for task in (MAX, ADD):
        msgs = _messages(task)
        used.complete_each(msgs, [("REPL", 4), ("ADDL", 4)], 1.0)
        assert used(msgs) == _backend(True)(msgs), task.id


def test_more_replies_than_sequences_are_drawn_in_rounds():
    from server.backends.llama_batch import MAX_SEQUENCES
    replies = _backend(True).complete(_messages(ADD), "REPL 2 >>>", MAX_SEQUENCES + 3, 1.0)
    assert len(replies) == MAX_SEQUENCES + 3 and all(r.startswith("REPL 2 >>>") for r in replies)


def test_replies_alike_so_far_share_one_batch_entry():
    from server.backends.llama_batch import alike
    # (sequence, reply so far, tokens to append, position of the first): 0 and 2 are alike, 1 is not
    pieces = [(0, [5, 7], [7], 41), (1, [5, 8], [8], 41), (2, [5, 7], [7], 41), (3, [6], [6], 40)]
    assert alike(pieces) == [([0, 2], [7], 41), ([1], [8], 41), ([3], [6], 40)]
    starts = [(s, [1, 2, 3], [1, 2, 3], 30) for s in range(4)]  # one ask's forced starts: one piece
    assert alike(starts) == [([0, 1, 2, 3], [1, 2, 3], 30)]


def test_replies_alike_so_far_take_tokens_no_other_has_taken_while_the_cut_leaves_one():
    import numpy as np

    from server.backends.llama_batch import ParallelSampler
    scores = np.full(10, -10.0)
    scores[3], scores[7] = 5.0, 3.0  # 0.88 and 0.12: both kept by top-p 0.95 and min-p 0.05
    cutoffs, anything = (40, 0.95, 0.05, 8), (lambda out, t: True)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        # the greedy reply takes 3, so the first drawn one takes 7; the rest draw freely from both
        picks = ParallelSampler._pick(scores, [], [0.0, 0.7, 0.7, 0.7], cutoffs, anything, rng)
        assert picks[:2] == [3, 7] and set(picks[2:]) <= {3, 7}
        assert sorted(ParallelSampler._pick(scores, [], [0.7, 0.7], cutoffs, anything, rng)) == [3, 7]
    # a reply alone draws as before: mostly the likelier token, sometimes the other
    rng = np.random.default_rng(0)
    alone = [ParallelSampler._pick(scores, [], [0.7], cutoffs, anything, rng)[0] for _ in range(300)]
    assert 200 < alone.count(3) < 300 and alone.count(7) == 300 - alone.count(3)
    # what the cut or the grammar leaves is all there is: then replies stay alike
    sure = scores.copy()
    sure[7] = -5.0
    assert ParallelSampler._pick(sure, [], [0.0, 0.7, 0.7], cutoffs, anything, rng) == [3, 3, 3]
    assert ParallelSampler._pick(scores, [], [0.0, 0.7], cutoffs, lambda out, t: t != 3, rng) == [7, 7]
    assert ParallelSampler._pick(scores, [], [0.7], cutoffs, lambda out, t: False, rng) == [None]


def test_a_reply_past_its_deadline_raises_out_of_time_and_leaves_the_backend_as_a_fresh_one():
    """The repair engine hands the model its fix's end (`deadline`): a reply or a group of line
    samples not whole by then raises dsl.OutOfTime, and the backend answers the next request as a
    fresh one would (nothing half-read is taken for a prompt)."""
    import time

    from dsl import OutOfTime
    used, msgs = _backend(True), _messages(MAX)
    used.deadline = time.monotonic()
    with pytest.raises(OutOfTime):
        used(msgs)
    with pytest.raises(OutOfTime):
        used.complete_each(msgs, [("REPL", 4), ("ADDL", 4)], 1.0)
    # a long prompt stops between its chunks: about 3,000 tokens, far more than 50 ms of reading
    long = Task("long", "def f(x):\n" + "".join(f"    x = x + {i} * (x - {i})\n" for i in range(300)) + "    return x",
                "assert f(1) == 2")
    used.deadline = time.monotonic() + 0.05
    with pytest.raises(OutOfTime):
        used(_messages(long))
    assert used.llm.n_tokens < len(used.fmt.prompt(_messages(long)))
    used.deadline = None
    fresh = _backend(True)
    assert used(msgs) == fresh(msgs)
    assert used.complete(msgs, "REPL 4 >>>", 3, 0.0) == fresh.complete(msgs, "REPL 4 >>>", 3, 0.0)
