"""Batched rollouts (server/backends/lockstep.py, driven by trainer.rollout.rollouts) on the tiny
model: every row's episode is token for token the episode the sequential path plays with the same
random stream (greedy and sampled, replies cut at the token limit included), and an error in one
episode reaches the caller without leaving the others waiting."""
from __future__ import annotations

import random
import threading

import pytest

torch = pytest.importorskip("torch")

from dsl import Task, Verifier  # noqa: E402
from server.backends import Lockstep, TransformersBackend, row_stream  # noqa: E402
from trainer.rl_tasks import candidates  # noqa: E402
from trainer.rollout import rollout, rollouts  # noqa: E402

ADD = Task("add", "def add(a, b):\n    return a - b", "assert add(2, 5) == 7\nassert add(0, 0) == 0")


@pytest.fixture(scope="module")
def verifier():
    v = Verifier()
    yield v
    v.close()


@pytest.fixture(scope="module")
def tasks(verifier):
    # programs of different lengths, so rows are padded differently at every turn
    return [ADD, *candidates(4, seed=3, min_edits=1, max_edits=2, verifier=verifier), ADD]


@pytest.mark.parametrize("temperature, max_new_tokens", [(0.0, 24), (1.0, 24), (1.0, 5)],
                         ids=["greedy", "sampled", "cut-at-the-token-limit"])
def test_each_row_plays_the_episode_the_sequential_path_plays(tiny_sft, tasks, verifier, temperature, max_new_tokens):
    torch.set_num_threads(2)
    backend = TransformersBackend(tiny_sft, temperature=temperature, max_new_tokens=max_new_tokens)
    seed = 7
    alone = []
    for i, task in enumerate(tasks):
        backend.rng = random.Random(row_stream(seed, i))  # row i's stream in lockstep
        alone.append(rollout(task, backend, verifier=verifier, max_turns=3))
    together = rollouts(tasks, backend, seed=seed, verifier=verifier, max_turns=3)
    assert [r.task_id for r in together] == [t.id for t in tasks]
    for a, b in zip(alone, together):
        assert b.prompt_ids == a.prompt_ids and b.completion_ids == a.completion_ids
        assert b.env_mask == a.env_mask and b.turn_spans == a.turn_spans and b.turn_rewards == a.turn_rewards
    if temperature > 0:  # fewer rows at a time: the same streams, so the same episodes
        fewer = rollouts(tasks, backend, rows=4, seed=seed, verifier=verifier, max_turns=3)
        assert [r.completion_ids for r in fewer] == [r.completion_ids for r in together]
    if temperature > 0:  # the check has teeth: sampled episodes are several turns long and differ by row
        assert sum(len(r.turn_spans) for r in together) > len(tasks)
        assert len({tuple(r.completion_ids) for r in together}) > 2
    if max_new_tokens == 5:
        assert any(0 in r.env_mask[s:e] for r in together for s, e in r.turn_spans)  # a reply was cut


class FailingVerifier(Verifier):
    """The real verifier, except that one task's tests cannot be run (a fault injected on purpose)."""

    def verify(self, code, tests, timeout_s=None):
        if "boom" in tests:
            raise OSError("sandbox lost")
        return super().verify(code, tests, timeout_s)


def test_an_error_in_one_episode_reaches_the_caller_and_frees_the_others(tiny_sft):
    backend = TransformersBackend(tiny_sft, temperature=1.0, max_new_tokens=8)
    bad = Task("bad", ADD.code, ADD.tests + "\n# boom")
    v = FailingVerifier()
    caught: list[BaseException] = []

    def play():
        try:
            rollouts([ADD, bad, ADD], backend, seed=1, verifier=v, max_turns=3)
        except OSError as e:
            caught.append(e)
    t = threading.Thread(target=play, daemon=True)
    t.start()
    t.join(300)
    v.close()
    assert not t.is_alive(), "a row was left waiting for the failed one"
    assert [str(e) for e in caught] == ["sandbox lost"]


def test_bad_rows_and_a_context_that_does_not_extend_the_row_are_refused(tiny_sft):
    with pytest.raises(ValueError, match="rows must be 0"):
        rollouts([ADD], TransformersBackend(tiny_sft), rows=-1)
    backend = TransformersBackend(tiny_sft, max_new_tokens=4)
    lockstep = Lockstep(backend, 1)
    ids = backend.fmt.prompt([{"role": "system", "content": "x"}, {"role": "user", "content": "1 | pass"}])
    lockstep.rows[0].generate_ids(ids)
    with pytest.raises(ValueError, match="does not extend"):
        lockstep.rows[0].generate_ids(ids[:-1] + [ids[-1] + 1] + ids)
