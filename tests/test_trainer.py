"""The trainer on CPU with the tiny preset: SFT lowers loss, backends only write valid commands,
evaluation gives well-formed metrics, export round-trips through llama.cpp, and every GPU preset's
architecture builds and trains a step with a tiny random config (the GPU itself is not tested)."""
from __future__ import annotations

import json
from functools import partial

import pytest

torch = pytest.importorskip("torch")

from dsl import Command, EditorState, Episode, load_mbpp, new_conversation, parse, Task  # noqa: E402
from server.backends import LlamaCppBackend, TransformersBackend, load_backend, ModelError  # noqa: E402
from server.backends import CHATML, TokenFormat  # noqa: E402
from trainer.evaluate import EvalConfig, evaluate, main, pass_at_k  # noqa: E402
from trainer.export import export  # noqa: E402
from trainer.presets import PRESETS  # noqa: E402
from trainer.sft import SFTRun, load_rows, tokenize_rows, train  # noqa: E402


@pytest.fixture
def data(sft_data):
    return sft_data


@pytest.fixture
def tiny(tiny_sft):
    return tiny_sft


def _loss(model, tok, rows) -> float:
    fmt = TokenFormat(tok, CHATML)
    data, _, _ = tokenize_rows(rows, fmt, 2048)
    losses = []
    with torch.no_grad():
        for r in data[:8]:
            out = model(input_ids=torch.tensor([r["input_ids"]]), labels=torch.tensor([r["labels"]]))
            losses.append(out.loss.item())
    return sum(losses) / len(losses)


def test_sft_lowers_the_loss_on_command_tokens(tiny, data):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    meta = json.loads((tiny / "coedit.json").read_text())
    assert meta["steps"] == 12 and meta["chat"] == "chatml" and meta["rows"] > 40
    tok = AutoTokenizer.from_pretrained(tiny)
    trained = AutoModelForCausalLM.from_pretrained(tiny)
    fresh = AutoModelForCausalLM.from_config(trained.config)  # same architecture, untrained
    rows = load_rows(str(data), 8)
    assert _loss(trained, tok, rows) < _loss(fresh, tok, rows) - 1.0


def test_token_format_masks_exactly_the_assistant_tokens(tiny):
    from transformers import AutoTokenizer
    fmt = TokenFormat(AutoTokenizer.from_pretrained(tiny), CHATML)
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "L 1 x\n***\nok"},
            {"role": "assistant", "content": "DELL 1"}]
    ids, mask = fmt.encode(msgs)
    learned = [i for i, m in zip(ids, mask) if m]
    assert fmt.tok.decode(learned) == "DELL 1<|im_end|>"
    assert ids[: len(fmt.encode(msgs[:2])[0])] == fmt.encode(msgs[:2])[0]  # appending never re-tokenises
    assert fmt.prompt(msgs[:2]) == fmt.encode(msgs[:2])[0] + fmt.tok.encode("<|im_start|>assistant\n")


def test_grammar_constrained_backends_only_write_valid_commands(tiny, tmp_path):
    task = load_mbpp(["test"])[0]
    msgs = new_conversation(task, Episode(task).reset())
    # a barely trained model sampling hot: without the grammar this is mostly garbage
    hf = TransformersBackend(tiny, temperature=1.5, seed=1, max_new_tokens=48)
    gguf = export(tiny, tmp_path / "gguf", ("f16",))[0]
    ll = LlamaCppBackend(gguf, temperature=1.5, seed=1, max_new_tokens=48)
    for backend in (hf, ll):
        outs = [backend(msgs) for _ in range(4)]
        assert all(isinstance(parse(o), Command) for o in outs), outs


def test_code_grammar_only_writes_commands_that_apply_to_the_code(tiny, tmp_path):
    """The default grammar reads the code back from the tool turn: every command names a line
    that exists and, for REPW, old text that is on it. The syntax grammar alone, sampling the same
    barely trained model, writes some that do not apply (so this check can fail)."""
    task = load_mbpp(["test"])[0]
    msgs = new_conversation(task, Episode(task).reset())
    state = EditorState.from_code(task.code)
    gguf = export(tiny, tmp_path / "gguf", ("f16",))[0]
    for grammar, all_apply in (("code", True), ("syntax", False)):
        hf = TransformersBackend(tiny, grammar=grammar, temperature=1.5, seed=1, max_new_tokens=48)
        ll = LlamaCppBackend(gguf, grammar=grammar, temperature=1.5, seed=1, max_new_tokens=48)
        outs = [backend(msgs) for backend in (hf, ll) for _ in range(6)]
        assert all(isinstance(parse(o), Command) for o in outs), outs
        applies = [isinstance(state.apply(parse(o)), EditorState) for o in outs]
        assert all(applies) if all_apply else not all(applies), (grammar, outs)
    # llama.cpp's filter ranks the best HEAD tokens, then the rest: it picks what a full sort picks
    full, one = LlamaCppBackend(gguf, max_new_tokens=24), LlamaCppBackend(gguf, max_new_tokens=24)
    full.HEAD, one.HEAD = 10 ** 9, 1
    assert one(msgs) == full(msgs)


def test_both_backends_honour_the_sampling_cut_offs(tiny, tmp_path):
    """top_p and min_p reach both samplers: cut to the best token, a hot draw is the greedy reply;
    with the cut-offs off, the same hot draws vary (so the first check can fail)."""
    task = load_mbpp(["test"])[0]
    msgs = new_conversation(task, Episode(task).reset())
    gguf = export(tiny, tmp_path / "gguf", ("f16",))[0]
    for make in (partial(TransformersBackend, tiny), partial(LlamaCppBackend, gguf)):
        greedy = make(max_new_tokens=24)(msgs)
        for cut in ({"min_p": 0.999}, {"top_p": 1e-6}):
            hot = make(temperature=1.5, seed=1, max_new_tokens=24, **cut)
            assert [hot(msgs) for _ in range(4)] == [greedy] * 4, (make, cut)
        free = make(temperature=1.5, seed=1, max_new_tokens=24, top_p=1.0, min_p=0.0)
        assert any(free(msgs) != greedy for _ in range(4)), make
    with pytest.raises(ValueError, match="min_p"):
        TransformersBackend(tiny, min_p=1.0)


def test_kv_cache_reuse_across_turns_samples_the_same_tokens(tiny):
    """A second turn prefills only what the tool added, and samples what a fresh backend samples."""
    task = load_mbpp(["test"])[0]
    msgs = new_conversation(task, Episode(task).reset())
    cached = TransformersBackend(tiny, temperature=1.0, seed=3, max_new_tokens=24)
    fed = []
    cached.model.register_forward_pre_hook(lambda m, a, kw: fed.append(kw["input_ids"].shape[1]),
                                           with_kwargs=True)
    first = cached.fmt.prompt(msgs)
    reply, _ = cached.generate_ids(first)
    second = first + reply + cached.fmt.stop_ids[:1] + cached.fmt.tool_turn("L 1 x\n***\n0/3 tests pass")
    fed.clear()
    again, _ = cached.generate_ids(second)
    assert fed[0] == len(second) - len(first) - len(reply)  # the previous turn's cache was reused
    replay = TransformersBackend(tiny, temperature=1.0, seed=3, max_new_tokens=24)
    replay.generate_ids(first)  # same rng draws as `cached` made on its first turn
    replay.forget_cache()  # forget the cache: the second turn is prefilled whole
    assert replay.generate_ids(second)[0] == again


def test_grammar_decoding_ranks_past_the_head_when_it_holds_no_allowed_token(tiny):
    """Ranking only the best HEAD tokens, then the rest of the vocabulary, picks what a full sort picks."""
    task = load_mbpp(["test"])[0]
    msgs = new_conversation(task, Episode(task).reset())
    full = TransformersBackend(tiny, max_new_tokens=24)
    full.HEAD = 10 ** 9  # the whole vocabulary, sorted every token
    one = TransformersBackend(tiny, max_new_tokens=24)
    one.HEAD = 1  # wherever the top token breaks the grammar, the choice comes from the full ranking
    ranked, past_head = one._allowed_order, []

    def counting(logits, order, head):
        for i, tok in enumerate(ranked(logits, order, head)):
            past_head.append(i >= len(order))
            yield tok
    one._allowed_order = counting
    reply = one(msgs)
    assert reply == full(msgs)
    assert any(past_head)  # the fall-through really happened
    assert isinstance(parse(reply), Command)


def test_export_round_trips_through_llama_cpp(tiny, tmp_path):
    import numpy as np
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from server.backends.tokens import LlamaTokenizer
    files = export(tiny, tmp_path / "m")
    assert [f.name for f in files] == ["model-f16.gguf", "model-q8_0.gguf"]
    card = (tmp_path / "m" / "README.md").read_text()
    assert "python -m trainer sft --preset tiny" in card and "model-q8_0.gguf" in card
    task = load_mbpp(["test"])[3]
    msgs = new_conversation(task, Episode(task).reset())
    tok = AutoTokenizer.from_pretrained(tiny)
    ids = TokenFormat(tok, CHATML).prompt(msgs)
    llm = Llama(model_path=str(files[0]), n_ctx=2048, verbose=False, logits_all=True)
    assert TokenFormat(LlamaTokenizer(llm), CHATML).prompt(msgs) == ids  # same tokens
    with torch.no_grad():
        hf_logits = AutoModelForCausalLM.from_pretrained(tiny)(torch.tensor([ids])).logits[0, -1].numpy()
    llm.eval(ids)
    ll_logits = np.array(llm.scores[llm.n_tokens - 1])
    assert hf_logits.argmax() == ll_logits.argmax()  # same top next token
    assert TransformersBackend(tiny)(msgs) == LlamaCppBackend(files[0])(msgs)  # same greedy command


def test_lora_adapter_export_round_trips_through_llama_cpp(data, tmp_path, random_lora):
    """`trainer export --lora`'s path: a LoRA adapter GGUF over a base GGUF, on a tiny random Llama
    (the SmolLM2 architecture): llama.cpp with the adapter agrees with HF+PEFT, and differs from the base."""
    import numpy as np
    from llama_cpp import Llama
    from trainer.export import convert, convert_lora
    from trainer.presets import build, conversation_texts
    model, tok = build(PRESETS["llama-3.2-1b"], tokenizer_texts=conversation_texts(data), tiny_random=True)
    base = tmp_path / "base"
    model.save_pretrained(base)
    tok.save_pretrained(base)
    (base / "coedit.json").write_text(json.dumps({"chat": "chatml", "run": {"tiny_random": True}}))
    convert(base, tmp_path / "base-f16.gguf", "f16")
    peft = random_lora(model)
    peft.save_pretrained(tmp_path / "adapter")
    adapter = tmp_path / "coedit.gguf"
    convert_lora(tmp_path / "adapter", base, adapter)
    adapter.with_suffix(".json").write_text(json.dumps({"chat": "chatml", "lora_base": "base-f16.gguf"}))

    task = load_mbpp(["test"])[3]
    msgs = new_conversation(task, Episode(task).reset())
    ids = TokenFormat(tok, CHATML).prompt(msgs)
    with torch.no_grad():
        hf = peft.eval()(torch.tensor([ids])).logits[0, -1].numpy()
    scores = {}
    for name, lora in (("base", None), ("adapted", adapter)):
        llm = Llama(model_path=str(tmp_path / "base-f16.gguf"), lora_path=str(lora) if lora else None,
                    n_ctx=2048, verbose=False, logits_all=True)
        llm.eval(ids)
        scores[name] = np.array(llm.scores[llm.n_tokens - 1])
    assert hf.argmax() == scores["adapted"].argmax()
    assert np.abs(scores["adapted"] - hf).max() < 0.05 < np.abs(scores["base"] - hf).max()
    merged = TransformersBackend.from_model(peft.merge_and_unload(), tok)
    assert LlamaCppBackend(adapter)(msgs) == merged(msgs)  # the server's loader: same greedy command


def test_lora_gguf_reads_back_into_the_peft_adapter_it_came_from(data, tmp_path, random_lora):
    """adapter_from_gguf inverts convert_lora_to_gguf on a tiny random Llama with grouped-query
    attention (the SmolLM2 architecture, whose q/k LoRA B rows the converter permutes): every
    tensor comes back to f16 precision, and the rank, alpha and chat format with them. Not a LoRA
    GGUF is a clear error."""
    from safetensors.torch import load_file
    from trainer.export import convert, convert_lora
    from trainer.adapters import adapter_from_gguf
    from trainer.presets import build, conversation_texts
    model, tok = build(PRESETS["llama-3.2-1b"], tokenizer_texts=conversation_texts(data), tiny_random=True)
    assert model.config.num_key_value_heads < model.config.num_attention_heads
    base = tmp_path / "base"
    model.save_pretrained(base)
    tok.save_pretrained(base)
    (base / "coedit.json").write_text(json.dumps({"chat": "chatml", "run": {"tiny_random": True}}))
    peft = random_lora(model)
    with torch.no_grad():  # A as random as B, so that a swapped or transposed pair would show
        for name, p in peft.named_parameters():
            if "lora_A" in name:
                p.normal_(0, 0.05)
    peft.save_pretrained(tmp_path / "adapter")
    gguf_file = tmp_path / "coedit.gguf"
    convert_lora(tmp_path / "adapter", base, gguf_file)
    gguf_file.with_suffix(".json").write_text(json.dumps({"chat": "chatml", "lora_base": "base-f16.gguf"}))

    from transformers import AutoModelForCausalLM
    plain = AutoModelForCausalLM.from_pretrained(base)  # what `trainer rl` holds: the base, no LoRA layers
    back, chat = adapter_from_gguf(gguf_file, plain, tmp_path / "back")
    want = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    got = load_file(str(back / "adapter_model.safetensors"))
    assert set(got) == set(want) and len(want) == 4 * 7 * 2
    for key, w in want.items():
        assert torch.allclose(got[key], w, atol=1e-3), key
    cfg, orig = (json.loads((d / "adapter_config.json").read_text()) for d in (back, tmp_path / "adapter"))
    assert (cfg["r"], cfg["lora_alpha"], sorted(cfg["target_modules"])) == \
        (orig["r"], orig["lora_alpha"], sorted(orig["target_modules"]))
    assert chat == "chatml"
    convert(base, tmp_path / "base-f16.gguf", "f16")
    with pytest.raises(ValueError, match="not a LoRA adapter GGUF"):
        adapter_from_gguf(tmp_path / "base-f16.gguf", plain, tmp_path / "nope")


def test_eval_metrics_are_well_formed(tiny, tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("\n".join(Task(f"t{i}", "def f(x):\n    return x + 1\n", f"assert f({i}) == {i}").to_json()
                               for i in range(3)))
    out = tmp_path / "eval.json"
    m = evaluate(EvalConfig(tasks=str(tasks), model=str(tiny), k=2, max_turns=2, json=str(out),
                            proposers="episodes", all_episodes=True, plot=str(tmp_path / "eval.png")))
    saved = json.loads(out.read_text())
    for key in ("pass@1", "pass@k", "best_of_k", "invalid_rate", "mean_turns", "n_tasks", "k"):
        assert key in saved
    assert saved["n_tasks"] == 3 and saved["k"] == 2 and len(saved["tasks"]) == 3
    assert 0 <= m["pass@1"] <= m["pass@k"] <= 1 and 0 <= m["invalid_rate"] <= 1
    assert all(len(t["episodes"]) == 2 for t in saved["tasks"])
    assert (tmp_path / "eval.png").stat().st_size > 1000


def test_eval_redraws_a_command_that_would_revisit_code_and_counts_it(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(Task("t", "def f(x):\n    return x\n", "assert f(1) == 2").to_json())
    script = tmp_path / "noop.txt"  # a scripted "model" answers a redraw with the same no-op
    script.write_text("REPL 2 >>>    return x\nEXIT\n")
    out = tmp_path / "eval.json"
    m = evaluate(EvalConfig(tasks=str(tasks), model=f"scripted:{script}", k=1, redraws=2, proposers="episodes",
                            json=str(out)))
    episode = json.loads(out.read_text())["tasks"][0]["episodes"][0]
    assert episode["redrawn"] == 2 and episode["commands"] == ["REPL 2 >>>    return x", "EXIT"]
    assert m["redraws_per_episode"] == 2
    assert evaluate(EvalConfig(tasks=str(tasks), model=f"scripted:{script}", k=1,
                               proposers="episodes"))["redraws_per_episode"] == 0
    assert main(["--tasks", str(tasks), "--model", f"scripted:{script}", "--redraws", "-1"]) == 2


def test_pass_at_k_estimator():
    assert pass_at_k(4, 0, 1) == 0 and pass_at_k(4, 4, 1) == 1
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25) and pass_at_k(4, 1, 4) == 1
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)


def test_eval_runs_the_repair_engine_and_reports_who_fixed_what(tmp_path):
    tasks = tmp_path / "t.jsonl"
    tasks.write_text("\n".join(t.to_json() for t in (
        Task("off-by-one", "def f(n):\n    return n - 1\n", "assert f(2) == 3"),
        Task("hopeless", "def f(n):\n    return 0\n", "assert f(2) == 'two'"))))
    out = tmp_path / "e.json"
    m = evaluate(EvalConfig(tasks=str(tasks), proposers="search", runs=20, json=str(out)))
    assert m["fixed"] == 0.5 and m["fixed_by"] == {"search": 1} and m["model_only"] == 0
    assert m["test_runs"]["median"] >= 2 and m["seconds_per_task"]["p90"] is not None
    rows = {r["id"]: r for r in json.loads(out.read_text())["tasks"]}
    assert rows["off-by-one"]["fix"] == ["REPW 2 >>>- >>>+"] and rows["off-by-one"]["fixed_by"] == "search"
    assert not rows["hopeless"]["fixed"] and rows["hopeless"]["test_runs"] <= 20
    assert main(["--tasks", str(tasks), "--proposers", "search,magic"]) == 2
    assert main(["--tasks", str(tasks), "--baseline", "enumerative"]) == 2


def test_eval_runs_the_engine_with_fixs_own_settings_by_default():
    """`trainer eval` with no flags is exactly Fix's engine: the same RepairConfig, field for field
    (it once ran 1 model episode where Fix runs 4)."""
    from server.fix import engine_config
    from server.options import Options
    from trainer.evaluate import repair_config
    assert repair_config(EvalConfig()) == engine_config(Options())


def test_eval_skip_and_limit_take_a_later_disjoint_slice(tmp_path):
    tasks = tmp_path / "t.jsonl"
    tasks.write_text("\n".join(Task(f"t{i}", "def f():\n    return 1\n", "assert f() == 1").to_json() for i in range(5)))
    out = tmp_path / "e.json"
    evaluate(EvalConfig(tasks=str(tasks), baseline="none", skip=1, limit=3, json=str(out)))
    assert [t["id"] for t in json.loads(out.read_text())["tasks"]] == ["t1", "t2", "t3"]
    assert main(["--tasks", str(tasks), "--baseline", "none", "--skip", "5"]) == 2  # nothing left: an error
    assert main(["--tasks", str(tasks), "--baseline", "none", "--skip", "-1"]) == 2


@pytest.mark.parametrize("name", ["llama-3.2-1b", "llama-3.2-3b", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
def test_gpu_preset_architecture_takes_a_step_with_a_tiny_random_config(name, data, tmp_path):
    preset = PRESETS[name]
    final = train(SFTRun(preset=name, data=str(data), out=str(tmp_path), max_steps=1, batch_size=2,
                         tiny_random=True, save_steps=1000, threads=2))
    meta = json.loads((final / "coedit.json").read_text())
    assert meta["steps"] == 1 and meta["lora"] is True and meta["chat"] == preset.chat
    assert meta["preset"]["arch"] == preset.arch


def test_sft_time_limit_stops_the_run_and_still_saves_it(data, tmp_path):
    final = train(SFTRun(preset="tiny", data=str(data), out=str(tmp_path), epochs=1.0, batch_size=2,
                         max_minutes=1e-6, save_steps=1000, threads=2))
    meta = json.loads((final / "coedit.json").read_text())
    assert meta["steps"] == 1 and meta["planned_steps"] > 1 and meta["stopped_by_time"] is True
    assert (final / "model.safetensors").is_file()


def test_missing_models_give_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="no such model"):
        load_backend(tmp_path / "nope.gguf")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a model directory"):
        load_backend(tmp_path / "empty")
    (tmp_path / "bad.gguf").write_bytes(b"not a gguf")
    with pytest.raises(ModelError, match="cannot load it"):
        load_backend(tmp_path / "bad.gguf")
