"""RL (trainer/rl.py, rollout.py, audit.py): rollouts as token ids with an exact environment mask,
the documented rewards, per-turn advantages, and real GRPO steps on the tiny preset (the weights
change; a resumed run continues where it stopped; two processes over gloo)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from dsl import Episode, Task, new_conversation, write_tasks  # noqa: E402
from server.backends import CHATML, TokenFormat  # noqa: E402
from dsl.audit import audit  # noqa: E402
from trainer.rl import RLRun, train  # noqa: E402
from trainer.rollout import episode_advantages, rollout, token_advantages, turn_advantages  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ADD = Task("add", "def add(a, b):\n    return a - b", "assert add(2, 5) == 7\nassert add(0, 0) == 0\nassert add(3, 4) == 7")


class ScriptedReplies:
    """Plays fixed replies as token ids through the real tokenizer and token format (a scripted
    policy, not a model: it makes the rewards and masks of known command sequences checkable)."""

    def __init__(self, tok, replies: list[str]):
        self.tok, self.fmt, self.replies = tok, TokenFormat(tok, CHATML), list(replies)
        self.context, self.max_new_tokens = 2048, 64
        self.contexts: list[list[int]] = []

    def generate_ids(self, ids: list[int], lines=None) -> tuple[list[int], bool]:
        self.contexts.append(list(ids))
        text = self.replies.pop(0) if self.replies else "EXIT"
        return self.tok.encode(text, add_special_tokens=False), True


@pytest.fixture(scope="module")
def tok(tiny_sft):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tiny_sft)


@pytest.mark.parametrize("code, replies, max_turns, expected", [
    (ADD.code, ["REPL 1 >>>def add(a, b):", "REPL 2 >>>    return a + b", "EXIT"], 10, [0.0, 1.0, 0.0]),
    (ADD.code, ["FOO 2", "REPL 2 >>>    return a + b", "EXIT"], 10, [-0.5, 1.0, 0.0]),
    (ADD.code, ["DELL 9", "EXIT"], 10, [-0.5, 0.0]),
    (ADD.code, ["REPL 2 >>>    return a + b", "REPL 2 >>>    return a + b"], 2, [1.0, -0.5]),
    ("def add(a, b):\n    return a + b", ["EXIT"], 10, [0.0]),  # already solved: nothing to earn
    (ADD.code, ["ADDL 2 >>>    if a == 2: return 7", "ADDL 3 >>>    if a == 3: return 7", "EXIT"], 10,
     [0.0, 0.0, 0.0]),  # special-casing the test inputs passes, is flagged, and earns nothing
], ids=["solve-on-turn-2", "malformed", "no-such-line", "no-exit", "already-solved", "hack"])
def test_rollout_rewards_with_scripted_replies(tok, code, replies, max_turns, expected):
    task = Task("add", code, ADD.tests)
    r = rollout(task, ScriptedReplies(tok, replies), max_turns=max_turns)
    assert r.turn_rewards == expected
    assert r.hacks == (["test_literals"] if "a == 2" in replies[0] else [])


def test_rollout_env_mask_marks_exactly_the_sampled_tokens(tok):
    replies = ["REPL 2 >>>    return a * b", "REPL 2 >>>    return a + b", "EXIT"]
    sampler = ScriptedReplies(tok, replies)
    r = rollout(ADD, sampler)
    fmt, stop = sampler.fmt, sampler.fmt.stop_ids[0]
    assert len(r.completion_ids) == len(r.env_mask) and r.completion_ids[-1] == stop and r.env_mask[-1] == 1
    sampled = [t for t, m in zip(r.completion_ids, r.env_mask) if m]
    expected = [t for text in replies for t in tok.encode(text, add_special_tokens=False) + [stop]]
    assert sampled == expected
    for (start, end), text in zip(r.turn_spans, replies):  # spans cover each reply and its stop
        assert r.completion_ids[start:end] == tok.encode(text, add_special_tokens=False) + [stop]
        assert all(r.env_mask[start:end])
    # every context the model saw is the prompt plus the completion so far: appended, never re-encoded
    for ctx, (start, _) in zip(sampler.contexts, r.turn_spans):
        assert ctx == r.prompt_ids + r.completion_ids[:start]
    # and the masked-out tokens are exactly the tool's turns
    gap = r.completion_ids[r.turn_spans[0][1]:r.turn_spans[1][0]]
    assert not any(r.env_mask[r.turn_spans[0][1]:r.turn_spans[1][0]])
    assert tok.decode(gap).startswith("\n<|im_start|>user\n") and tok.decode(gap).endswith("<|im_start|>assistant\n")
    assert r.prompt_ids == fmt.prompt(new_conversation(ADD, Episode(ADD).reset()))


def test_turn_advantages_normalise_per_turn_over_the_group():
    group = [[0.0, 1.0, 0.0], [-0.5, 0.0], [0.0, 0.0, 0.0, -0.5]]
    flat = [0.0, 1.0, 0.0, -0.5, 0.0, 0.0, 0.0, 0.0, -0.5]
    mean = sum(flat) / len(flat)
    std = (sum((x - mean) ** 2 for x in flat) / len(flat)) ** 0.5
    norm = [[(x - mean) / (std + 1e-4) for x in rs] for rs in group]
    got = turn_advantages(group)
    for rs, adv in zip(norm, got):
        assert adv == pytest.approx([sum(rs[i:]) for i in range(len(rs))])
    assert got[0][1] > 0 > got[1][0]  # the solving turn is pushed up, the malformed one down
    assert turn_advantages([[0.0, 0.0], [0.0]]) == [[0.0, 0.0], [0.0]]  # every turn alike: no signal
    same = turn_advantages([[0.0, -0.5], [0.0, -0.5]])  # equal returns, but the missing EXIT is the turn to blame
    assert same[0] == same[1] and same[0][0] == pytest.approx(0.0, abs=1e-3) and same[0][1] < -0.9
    rows = token_advantages([[(0, 2), (5, 7)]], [[0.5, -1.0]], 8)
    assert rows == [[0.5, 0.5, 0.0, 0.0, 0.0, -1.0, -1.0, 0.0]]


def test_episode_advantages_give_every_turn_its_episodes_normalised_return():
    """Outcome GRPO: a solved 3-turn episode's first turn is pushed up, though per-turn normalisation
    (the paper's) pushes it down for the zero-reward turns after it; unsolved ones are pushed down."""
    group = [[0.0, 0.0, 1.0], [0.0, 0.0, -0.5], [0.0, -0.5], [0.0, 0.0, 0.0]]
    returns = [1.0, -0.5, -0.5, 0.0]
    mean = sum(returns) / 4
    std = (sum((r - mean) ** 2 for r in returns) / 4) ** 0.5
    got = episode_advantages(group)
    assert got == [pytest.approx([(r - mean) / (std + 1e-4)] * len(rs)) for r, rs in zip(returns, group)]
    assert got[0][0] > 0 > got[1][0] and got[1][0] == got[2][0]
    assert episode_advantages([[0.0, -0.5], [-0.5]]) == [[0.0, 0.0], [0.0]]  # equal returns: no signal
    assert episode_advantages([]) == []


def test_rl_with_episode_advantages_uses_them_and_records_the_choice(tiny_sft, rl_tasks_file, tmp_path, monkeypatch):
    import trainer.rollout
    calls = []
    real = trainer.rollout.ADVANTAGES["episode"]
    monkeypatch.setitem(trainer.rollout.ADVANTAGES, "episode", lambda group, **kw: calls.append(group) or real(group, **kw))
    final = train(_run(tiny_sft, rl_tasks_file, tmp_path, max_steps=1, advantage="episode"))
    assert len(calls) == 1 and len(calls[0]) == 2  # the step's one group of 2 episodes
    assert json.loads((final / "coedit.json").read_text())["run"]["advantage"] == "episode"


def test_audit_flags_gaming_not_fixing():
    tests = "assert f(3) == 9\nassert f(5) == 25"
    assert audit("def f(x):\n    return x * 3", "def f(x):\n    return x * x", tests) == []
    assert audit("def f(x):\n    return x * 3", "def f(x):\n    if x == 5:\n        return 25\n    return x * 3",
                 tests) == ["test_literals"]
    assert audit("def f(x):\n    return 0", "class A:\n    def __eq__(s, o):\n        return True\n"
                 "def f(x):\n    return A()", tests) == ["always_equal"]
    assert audit("def f(x):\n    return 0", "import sys\ndef f(x):\n    sys.exit(0)", tests) == ["exits"]
    assert audit("def f(x):\n    return 0", "def f(x):\n    try:\n        return x*x\n    except:\n        pass",
                 tests) == ["swallowed_errors"]
    assert audit("def f(x):\n    try:\n        return 1/x\n    except Exception:\n        return 0",
                 "def f(x):\n    try:\n        return x*x\n    except Exception:\n        return 0", tests) == []


def test_audit_reads_code_with_invalid_escapes_without_warning():
    # Python 3.12 warns (SyntaxWarning; a DeprecationWarning before) on "\\d" in a plain string at
    # parse time: one line in RL's log per solved episode that uses a regex
    start = "def f(s):\n    return s"
    gaming = "def f(s):\n    if s == 'a1':\n        return '\\d'"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        flagged = audit(start, gaming, 'assert f("a1") == "a"')
    assert flagged == ["test_literals"]  # still read: the warning is silenced, not the parse skipped
    assert [str(w.message) for w in caught] == []


@pytest.fixture(scope="module")
def rl_tasks_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("rl") / "tasks.jsonl"
    write_tasks(path, [ADD, Task("mul", "def mul(a, b):\n    return a + b", "assert mul(2, 3) == 6")])
    return path


def _run(tiny_sft, tasks, out, **kw) -> RLRun:
    return RLRun(preset="tiny", init=str(tiny_sft), out=str(out), tasks=str(tasks), group=2, tasks_per_step=1,
                 max_turns=3, save_steps=1, threads=2, **{"heldout_n": 0, **kw})


def test_one_grpo_step_changes_the_weights_when_its_group_rewards_differ(tiny_sft, rl_tasks_file, tmp_path,
                                                                         monkeypatch):
    """GRPO learns only from reward differences inside a group: a step whose episodes all earn the same
    per-turn rewards (e.g. every one EXITs unsolved) has zero advantages and must leave the weights
    alone; one with differences must change them. Which a seed gives depends on the CPU's floating
    point, so seeds are tried until one gives differences, each step checked either way. The real
    `turn_advantages` runs; the test only records what it was given."""
    import trainer.rollout
    from transformers import AutoModelForCausalLM
    groups: list[list[list[float]]] = []
    real = trainer.rollout.ADVANTAGES["turn"]
    monkeypatch.setitem(trainer.rollout.ADVANTAGES, "turn", lambda group, **kw: groups.append(group) or real(group, **kw))
    before = AutoModelForCausalLM.from_pretrained(tiny_sft).state_dict()
    for seed in range(4):
        out = tmp_path / f"seed{seed}"
        groups.clear()
        final = train(_run(tiny_sft, rl_tasks_file, out, max_steps=1, lr=1e-3, heldout=str(rl_tasks_file),
                           heldout_n=2, batch_rows=2, seed=seed))  # rollouts and held-out episodes in lockstep
        curve = json.loads((out / "curves.json").read_text())
        assert [p["step"] for p in curve] == [0, 1] and all(p["n"] == 2 for p in curve)
        meta = json.loads((final / "coedit.json").read_text())
        assert meta["steps"] == 1 and meta["stage"] == "rl" and meta["run"]["beta"] == 0.01 and meta["chat"] == "chatml"
        assert meta["episodes"] == 2 and (out / "curves.png").is_file()
        after = AutoModelForCausalLM.from_pretrained(final).state_dict()
        changed = [k for k in before if not torch.equal(before[k], after[k])]
        assert len(groups) == 1 and len(groups[0]) == 2  # one group of the step's 2 episodes
        if len({r for rewards in groups[0] for r in rewards}) > 1:
            assert len(changed) > len(before) // 2, groups
            return
        assert changed == [], groups  # all advantages 0: nothing to learn
    pytest.fail(f"no seed of 4 gave a group whose rewards differ (last: {groups}); the test needs one")


def test_resumed_run_continues_where_it_stopped(tiny_sft, rl_tasks_file, tmp_path):
    train(_run(tiny_sft, rl_tasks_file, tmp_path, max_steps=1))
    assert (tmp_path / "checkpoint-1").is_dir()
    final = train(_run(tiny_sft, rl_tasks_file, tmp_path, max_steps=2, resume=True))
    meta = json.loads((final / "coedit.json").read_text())
    assert meta["steps"] == 2
    state = json.loads((tmp_path / "checkpoint-2" / "trainer_state.json").read_text())
    assert [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2]  # step 1 not redone


def test_two_processes_over_gloo(tiny_sft, rl_tasks_file, tmp_path):
    """The scale-out path (2 processes, gloo, torchrun) on CPU with the tiny model."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "trainer", "rl", "--preset", "tiny",
           "--init", str(tiny_sft), "--out", str(tmp_path), "--tasks", str(rl_tasks_file), "--group", "2",
           "--tasks-per-step", "1", "--max-steps", "1", "--max-turns", "2", "--heldout-n", "0", "--threads", "1"]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    meta = json.loads((tmp_path / "final" / "coedit.json").read_text())
    assert meta["steps"] == 1 and meta["episodes"] == 4  # 2 processes x 1 group of 2



def test_max_steps_0_builds_and_saves_the_tasks_and_trains_nothing(tiny_sft, tmp_path):
    path = train(RLRun(preset="tiny", init=str(tiny_sft), out=str(tmp_path), n_tasks=2, probe_group=0,
                       max_steps=0, heldout_n=0, threads=2))
    assert path == tmp_path / "rl_tasks.jsonl" and len(path.read_text().splitlines()) == 2
    assert not (tmp_path / "final").exists() and not list(tmp_path.glob("checkpoint-*"))


def test_probing_keeps_only_tasks_solved_sometimes(tiny_sft, tmp_path):
    """The probe plays each candidate's group (here in lockstep) on the starting model; the tiny model
    solves none of them sometimes, which is a clear error, not an empty run."""
    with pytest.raises(ValueError, match="no RL task left after probing") as e:
        train(RLRun(preset="tiny", init=str(tiny_sft), out=str(tmp_path), n_tasks=2, probe_group=2, max_turns=2,
                    max_new_tokens=16, max_steps=0, heldout_n=0, threads=2, batch_rows=2))
    assert "'candidates': 2, 'kept': 0, 'never_solved': 2" in str(e.value)


def test_time_cap_stops_before_a_step_that_would_pass_it(tiny_sft, rl_tasks_file, tmp_path):
    final = train(_run(tiny_sft, rl_tasks_file, tmp_path, max_steps=3, max_minutes=1e-4))
    meta = json.loads((final / "coedit.json").read_text())
    assert meta["steps"] == 1 and meta["stopped_by_time"] is True and meta["run"]["max_minutes"] == 1e-4


def test_time_cap_stops_when_a_step_as_long_as_the_longest_would_end_past_the_cap(monkeypatch):
    """The cap is a deadline: at 45 s of a 60 s cap, after a 25 s step, another step would end at
    70 s, so the run stops now instead of overrunning a lent machine's call limit. A short step
    does not reset the estimate: after a 28 s step and then an 8 s one, at 36 s, the next step is
    planned as 28 s (ends at 64 s), not 8 s (rl11's last step took 75 s after a 14 s one)."""
    import types
    import torch
    from trainer import rl_callbacks

    def capped(times):
        clock = iter(times)
        monkeypatch.setattr(rl_callbacks.time, "time", lambda: next(clock))
        cap = rl_callbacks.time_cap(types.SimpleNamespace(max_minutes=1.0))
        cap.trainer = types.SimpleNamespace(accelerator=types.SimpleNamespace(
            device=torch.device("cpu"), reduce=lambda t, _: t))
        control = types.SimpleNamespace(should_training_stop=False)
        cap.on_train_begin(None, None, control)
        return cap, control

    cap, control = capped([0.0, 20.0, 45.0])
    cap.on_step_end(None, None, control)  # 20 s in, a 20 s step: the next ends at 40 s
    assert not control.should_training_stop
    cap.on_step_end(None, None, control)  # 45 s in, a 25 s step: the next would end at 70 s
    assert control.should_training_stop and cap.stopped

    cap, control = capped([0.0, 28.0, 36.0])
    cap.on_step_end(None, None, control)  # 28 s in, a 28 s step: the next ends at 56 s
    assert not control.should_training_stop
    cap.on_step_end(None, None, control)  # 36 s in, an 8 s step, but the longest took 28 s: 64 s
    assert control.should_training_stop


def test_rl_starts_from_the_shipped_gguf_adapter(tmp_path):
    """`--init models/default/coedit.gguf`: the exported LoRA read back over SmolLM2's pip base is
    the model the server serves (llama.cpp, same GGUFs): each token of the greedy command on a
    buggy function is as likely under both, within 0.25 nats (measured here: 0.04 at most). The
    texts are not compared: which token wins a near tie is the CPU's floating point, and llama.cpp's
    differs across CPU kinds. A preset whose base is not the adapter's is a clear error."""
    from dsl import Command, parse
    from server.backends import LlamaCppBackend, ModelError, TransformersBackend
    from trainer.rl import load_policy
    shipped = ROOT / "models" / "default" / "coedit.gguf"
    policy, tok, chat = load_policy(RLRun(preset="smollm2-135m", init=str(shipped), out=str(tmp_path)))
    import gguf
    lora_a = next(t for t in gguf.GGUFReader(str(shipped)).tensors if t.name.endswith(".lora_a"))
    rank = min(int(d) for d in lora_a.shape)  # the file's own rank (the shipped SFT+RL adapter: 16 + 16)
    assert json.loads((tmp_path / "init-adapter" / "adapter_config.json").read_text())["r"] == rank
    task = Task("add", "def add(a, b):\n    return a - b", "assert add(2, 5) == 7\nassert add(0, 0) == 0")
    msgs = new_conversation(task, Episode(task).reset())
    torch_side, llama_side = TransformersBackend.from_model(policy.eval(), tok, chat), LlamaCppBackend(shipped)
    replies = [torch_side(msgs), llama_side(msgs)]
    assert all(isinstance(parse(r), Command) for r in replies), replies
    for reply in replies:
        [a], [b] = torch_side.score(msgs, [reply]), llama_side.score(msgs, [reply])
        assert len(a) == len(b) > 2 and max(abs(x - y) for x, y in zip(a, b)) < 0.25, (reply, a, b)
    with pytest.raises(ModelError, match="not over preset"):
        load_policy(RLRun(preset=GPU_PRESET, init=str(shipped), out=str(tmp_path / "other")))


GPU_PRESET = "qwen2.5-coder-0.5b"  # a tiny random config of its architecture stands in for its weights


@pytest.fixture
def sft_adapter(sft_data, tmp_path, random_lora):
    """(base dir, SFT adapter dir, the adapted model, tokenizer): what a GPU SFT run brings back."""
    from trainer.presets import PRESETS, build, conversation_texts
    model, tok = build(PRESETS[GPU_PRESET], tokenizer_texts=conversation_texts(sft_data), tiny_random=True)
    base = tmp_path / "base"
    model.save_pretrained(base)
    tok.save_pretrained(base)
    peft = random_lora(model)
    adapter = tmp_path / "sft" / "adapter"
    peft.save_pretrained(adapter)
    (adapter.parent / "coedit.json").write_text(json.dumps({"preset": {"name": GPU_PRESET}, "chat": "chatml"}))
    return base, adapter, peft.eval(), tok


def _logits(model, tok):
    with torch.no_grad():
        return model.eval()(torch.tensor([tok.encode("def add(a, b):\n    return a - b")])).logits


def test_adapter_init_is_merged_over_its_base(sft_adapter):
    """`--init OUT/adapter` starts from base + adapter merged: the same logits as HF+PEFT, not the
    base's; a mismatched preset is a clear error."""
    from server.backends import ModelError
    from transformers import AutoModelForCausalLM
    from trainer.rl import load_policy
    base, adapter, peft, tok = sft_adapter
    policy, _, chat = load_policy(RLRun(preset=GPU_PRESET, init=str(adapter), base=str(base)))
    got, plain = _logits(policy, tok), _logits(AutoModelForCausalLM.from_pretrained(base), tok)
    assert torch.allclose(got, _logits(peft, tok), atol=1e-4) and not torch.allclose(got, plain, atol=1e-2)
    assert chat.name == "chatml" and not hasattr(policy, "peft_config")  # merged: RL adds its own LoRA
    with pytest.raises(ModelError, match=f"{GPU_PRESET}, not llama-3.2-1b"):
        load_policy(RLRun(preset="llama-3.2-1b", init=str(adapter), base=str(base)))


def test_stacked_adapters_equal_the_second_over_the_first_merged(sft_adapter, tmp_path, random_lora):
    """stack_adapters: base + [SFT; RL] as one rank-32 LoRA gives the logits of RL's LoRA over
    base+SFT merged, exactly (both adapters random, so dropping either would show)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from trainer.adapters import stack_adapters
    base, adapter, peft, tok = sft_adapter
    second = random_lora(peft.merge_and_unload())
    second.save_pretrained(tmp_path / "rl-only")
    stacked = stack_adapters(adapter, tmp_path / "rl-only", tmp_path / "stacked")
    assert json.loads((stacked / "adapter_config.json").read_text())["r"] == 32
    got = _logits(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(stacked)), tok)
    sft_only = _logits(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(adapter)), tok)
    assert torch.allclose(got, _logits(second, tok), atol=1e-4) and not torch.allclose(got, sft_only, atol=1e-2)


def test_rl_from_an_adapter_writes_the_stacked_adapter(sft_adapter, rl_tasks_file, tmp_path):
    """One GRPO step from `--init OUT/adapter`: OUT/adapter over the base is the merged OUT/final."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from trainer.export import model_card
    base, adapter, _, tok = sft_adapter
    final = train(RLRun(preset=GPU_PRESET, init=str(adapter), base=str(base), out=str(tmp_path / "rl"),
                        tasks=str(rl_tasks_file), group=2, tasks_per_step=1, max_turns=2, heldout_n=0,
                        max_steps=1, lr=1e-3, threads=2))
    shipped = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(tmp_path / "rl" / "adapter"))
    assert torch.allclose(_logits(shipped, tok), _logits(AutoModelForCausalLM.from_pretrained(final), tok), atol=1e-4)
    card = model_card(tmp_path / "rl", tmp_path / "card", [], [])  # what `export --lora` would write
    assert f"`python -m trainer rl --preset {GPU_PRESET} --init {adapter} --base {base}" in card
    assert "| RL | GRPO, 2 tasks, 1 steps, 2 episodes, lr 0.001," in card


def test_rl_refuses_an_unknown_advantage_rule_before_loading_anything(capsys):
    from trainer.rl import main
    assert main(["--advantage", "sequence"]) == 2
    assert "--advantage must be turn or episode" in capsys.readouterr().err
