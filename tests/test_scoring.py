"""Backends score given replies (`score`: each token's log-probability as the model's next message),
the same in transformers and llama.cpp."""
from __future__ import annotations

import pytest

from dsl import Episode, Task, new_conversation


@pytest.fixture(scope="module")
def conversation():
    task = Task("t", "def f(x):\n    return x + 1\n", "assert f(1) == 3")
    return new_conversation(task, Episode(task).reset())


REPLIES = ["REPW 2 >>>+ >>>-", "DELL 2", "REPL 2 >>>    return x + 2", "", "EXIT"]


def test_transformers_scores_equal_one_forward_pass_per_reply(tiny_sft, conversation):
    """`score` prefills the conversation once and crops the cache after each reply: every reply's
    log-probabilities must equal a forward pass over the whole conversation and that reply."""
    torch = pytest.importorskip("torch")
    from server.backends import TransformersBackend
    backend = TransformersBackend(tiny_sft)
    scores = backend.score(conversation, REPLIES)
    prompt = backend.fmt.prompt(conversation)
    for text, got in zip(REPLIES, scores):
        reply = backend.fmt.tok.encode(text, add_special_tokens=False) + backend.fmt.stop_ids
        with torch.no_grad():
            logits = backend.model(input_ids=torch.tensor([prompt + reply])).logits[0]
        want = torch.log_softmax(logits[len(prompt) - 1: -1].float(), -1)[torch.arange(len(reply)), reply]
        assert len(got) == len(reply) and got == pytest.approx(want.tolist(), abs=1e-4)
    assert all(x <= 0 for s in scores for x in s)


def test_llama_cpp_scores_agree_with_transformers(tiny_sft, conversation, tmp_path):
    pytest.importorskip("llama_cpp")
    from server.backends import LlamaCppBackend, TransformersBackend
    from trainer.export import export
    gguf = export(tiny_sft, tmp_path / "m", outtypes=("f16",))[0]
    hf = TransformersBackend(tiny_sft).score(conversation, REPLIES)
    ll = LlamaCppBackend(gguf).score(conversation, REPLIES)
    # f16 weights against float32: close per token (an exact ranking could tie differently on
    # another CPU's kernels, so only closeness is asserted)
    for a, b in zip(hf, ll):
        assert len(a) == len(b) and b == pytest.approx(a, abs=0.05)
