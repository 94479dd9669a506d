"""Search over single-line edits (trainer/search.py): the candidates, the test-run budget, the
model's order, and the backends' `score` that orders them (the tiny model, transformers and its
llama.cpp export)."""
from __future__ import annotations

import json

import pytest

from dsl import EditorState, Episode, Task, Verifier, new_conversation
from trainer.evaluate import EvalConfig, evaluate, main
from trainer.search import TRY_TIMEOUT_S, bound_names, mutations, ranked, try_in_order

SWAP = Task("swap", "def f(a, b):\n    total = a + a\n    return total\n", "assert f(1, 2) == 3")


def test_mutations_apply_never_repeat_a_program_and_come_in_kind_order():
    code = SWAP.code
    state = EditorState.from_code(code)
    commands = mutations(code)
    programs = [state.apply(c).to_code() for c in commands]
    assert all(isinstance(state.apply(c), EditorState) for c in commands)
    assert len(set(programs)) == len(programs) and code not in programs
    assert bound_names(code) == ["a", "b", "f", "total"]
    texts = [str(c) for c in commands]
    # operators first, then deleting lines, then name swaps (a fix swaps one `a` for `b`)
    first_dell = next(i for i, t in enumerate(texts) if t.startswith("DELL"))
    fix = texts.index("REPL 2 >>>    total = a + b")
    assert texts.index("REPW 2 >>>+ >>>-") < first_dell < fix
    assert "REPW 3 >>>total >>>b" in texts and "REPL 3 >>>    return a" in texts  # any bound name for another


def test_try_in_order_stops_at_the_budget_and_at_the_first_pass():
    verifier = Verifier()
    try:
        commands = mutations(SWAP.code)
        fix = next(i for i, c in enumerate(commands) if str(c) == "REPL 2 >>>    total = b + a")  # the first fix
        spent = try_in_order(SWAP, commands, verifier, budget=fix)  # one run short of the fix
        assert not spent["solved"] and spent["turns"] == fix
        found = try_in_order(SWAP, commands, verifier, budget=fix + 1)
        assert found["solved"] and found["turns"] == found["solved_at"] == fix + 1
        assert found["fix"] == "REPL 2 >>>    total = b + a" and found["candidates"] == len(commands)
    finally:
        verifier.close()
    assert TRY_TIMEOUT_S <= 2.0


def test_ranked_search_tries_what_the_model_prefers_within_the_same_budget(tmp_path):
    tasks = tmp_path / "t.jsonl"
    tasks.write_text(SWAP.to_json())
    script = tmp_path / "prefers.txt"  # the scripted "model" scores its file's commands above the rest
    script.write_text("REPL 2 >>>    total = a + b\n")
    out = tmp_path / "ranked.json"
    enumerative = evaluate(EvalConfig(tasks=str(tasks), baseline="enumerative", budget=3))
    assert enumerative["pass@1"] == 0 and enumerative["mean_turns"] == 3
    m = evaluate(EvalConfig(tasks=str(tasks), mode="ranked", model=f"scripted:{script}", budget=3, json=str(out)))
    episode = json.loads(out.read_text())["tasks"][0]["episodes"][0]
    # the first tool state (what the model reads) is one test run, its favourite the second
    assert m["pass@1"] == 1 and episode["turns"] == episode["solved_at"] == 2
    assert episode["fix"] == "REPL 2 >>>    total = a + b"
    assert main(["--tasks", str(tasks), "--mode", "ranked", "--model", f"scripted:{script}", "--k", "4"]) == 2
    assert main(["--tasks", str(tasks), "--baseline", "enumerative", "--budget", "0"]) == 2
    assert main(["--tasks", str(tasks), "--mode", "beam"]) == 2
    assert main(["--tasks", str(tasks), "--baseline", "random"]) == 2


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


def test_ranked_orders_by_mean_log_probability(tiny_sft):
    from server.backends import TransformersBackend
    backend = TransformersBackend(tiny_sft)
    verifier = Verifier()
    try:
        commands = mutations(SWAP.code)
        order = ranked(SWAP, commands, backend, verifier)
        view = Episode(SWAP, verifier=verifier).reset()
    finally:
        verifier.close()
    scores = backend.score(new_conversation(SWAP, view), [str(c) for c in order])
    means = [sum(s) / len(s) for s in scores]
    assert sorted(map(str, order)) == sorted(map(str, commands))
    assert means == sorted(means, reverse=True)
