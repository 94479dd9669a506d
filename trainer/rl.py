"""Stage 3 — RLVR: multi-turn GRPO over `dsl` episodes, with TRL's GRPOTrainer.

    python -m trainer rl --preset tiny --init runs/sft-tiny/final --out runs/rl-tiny
    python -m trainer rl --preset smollm2-135m --init runs/sft-smollm2/final --out runs/rl-smollm2
    python -m trainer rl --preset smollm2-135m --init models/default/coedit.gguf ...  # from the shipped model
    python -m trainer rl ... --max-steps 0                # only build and probe the tasks (OUT/rl_tasks.jsonl)
    python -m trainer rl ... --resume                     # continue from the last checkpoint in --out
    torchrun --nproc_per_node 2 -m trainer rl ...          # 2 CPU processes over gloo (the tested path)
    accelerate launch --config_file trainer/accelerate/deepspeed_zero2.yaml -m trainer rl ...  # GPUs

A rollout is one episode of the `dsl` tool (`trainer/rollout.py`): the model being trained writes
a command, the sandboxed verifier answers with the new state and test results, and so on until
EXIT or the turn cap; token ids are appended turn by turn with an environment mask (model 1, tool
0). With `--batch-rows N` a step's episodes are decoded N at a time, one forward pass per token
for all of them (`server.backends.Lockstep`; meant for a GPU: on the CPU, one at a time, the default,
is as fast). Rewards are the paper's (`dsl/episode.py`; `--reward partial` adds the change in
tests passing); advantages are normalised per turn over each group (`turn_advantages`, the
paper's; `--advantage episode`: each episode's normalised return on all its turns), shaped (batch,
tokens). Solved episodes are audited for reward hacking (`dsl/audit.py`); flagged ones lose
the solve reward and are counted (`episode/hacks`).

Tasks: `--tasks FILE` (dsl task format), or built from MBPP train + validation with 2-5 edits and
kept only if the starting model solves them sometimes over a probe group (`trainer/rl_tasks.py`).
Logs: tensorboard under OUT/runs (reward, solve rate, invalid-command rate, turns, KL, grad norm,
share of groups with no reward variance), OUT/log_history.json (the same, per step), OUT/curves.json
and OUT/curves.png (reward and held-out pass@1), OUT/coedit.json (the full config); the final
model (merged, when LoRA) in OUT/final and, when --init is an SFT adapter (or its GGUF), OUT/adapter:
SFT's and RL's LoRA stacked into one adapter over the preset's base (`trainer export --lora
OUT/adapter` ships it). `--max-minutes` stops before a step that, as long as the longest so far,
would pass the cap (a lent GPU's call has a hard limit); the run is saved as at its last step.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dsl import Verifier, load_tasks, write_tasks
from server.backends import CHATML, FORMATS, MIN_P, TOP_P, ModelError, TransformersBackend, chat_of

from .adapters import is_adapter, merged_adapter, save_stacked_adapter
from .flags import parse_flags, run_stage
from .presets import LORA, PRESETS
from .rl_callbacks import heldout_callback, plot_curves, time_cap
from .rl_tasks import candidates, probe
from .rollout import ADVANTAGES, rollouts, token_advantages


@dataclass
class RLRun:
    preset: str = "tiny"  # a name from trainer/presets.py (decides LoRA vs full)
    init: str = ""  # the SFT model: a checkpoint dir (sft's OUT/final), a LoRA adapter dir (OUT/adapter) or
    # a LoRA GGUF that `trainer export --lora` wrote (models/default/coedit.gguf), read back into OUT/init-adapter
    base: str = ""  # local weights of a GPU preset, under an adapter --init
    out: str = "runs/rl-tiny"
    tasks: str = ""  # RL tasks (dsl task JSONL); empty: build and probe them (saved as OUT/rl_tasks.jsonl)
    n_tasks: int = 64  # candidates to build
    probe_group: int = 4  # rollouts per candidate when filtering; 0: keep every candidate
    min_edits: int = 2
    max_edits: int = 5
    group: int = 4  # G: rollouts of the same task
    tasks_per_step: int = 2  # groups per optimizer step (per process)
    max_steps: int = 50  # 0: build and probe the tasks, then stop
    max_minutes: float = 0.0  # stop before a step as long as the longest yet would pass this (0: no cap)
    lr: float = 1e-5
    beta: float = 0.01  # KL to the starting model
    epsilon: float = 0.2  # clip
    loss_type: str = "grpo"  # TRL loss aggregation: grpo | dapo | dr_grpo | bnpo
    temperature: float = 1.0
    top_k: int = 40
    # sampling's cut-offs, as the server and `trainer eval` sample (server/backends/sampling.py); 1 and 0: off
    top_p: float = TOP_P
    min_p: float = MIN_P
    max_turns: int = 10
    max_new_tokens: int = 64  # per reply
    context: int = 2048  # token budget of a whole episode
    reward: str = "paper"  # paper | partial
    advantage: str = "turn"  # turn (per-turn normalisation, the paper's) | episode (normalised return)
    # episodes decoded together (server/backends/lockstep.py): one forward pass per token for up to this
    # many, the same episodes up to each row's own random stream. 0, one at a time: on the 2-core CPU
    # lockstep measured no faster (bench/rollout_speed.py) and held more memory; meant for a GPU
    batch_rows: int = 0
    grammar: bool = True  # decode under the dsl grammar, as the server does
    lora: str = "preset"  # preset | on | off
    heldout: str = "runs/data/eval_mbpp_test.jsonl"  # held-out pass@1 curve (greedy); never trained on
    heldout_n: int = 20  # first N tasks of --heldout; 0: no curve
    eval_every: int = 10  # steps between held-out evaluations (also at start and end)
    seed: int = 0
    save_steps: int = 10
    logging_steps: int = 1
    threads: int = 0
    bf16: str = "off"  # auto | on | off (the policy's rollouts decode in fp32 either way)
    # recompute activations in the backward pass: whole episodes (G of them, up to --context tokens
    # each) otherwise keep every layer's activations alive; on CPU that working set reached 24 GB
    checkpointing: bool = True
    resume: bool = False


def load_policy(run: RLRun):
    """(model, tokenizer, chat format) of the starting checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    init = Path(run.init)
    if is_adapter(run.init):
        return merged_adapter(init, run.preset, run.base, sft_adapter(run))
    if not run.init or not (init / "config.json").is_file():
        raise ModelError(f"--init {run.init or '(none)'}: not a checkpoint directory; give the SFT model "
                         "(`python -m trainer sft --out DIR` writes DIR/final, and DIR/adapter for LoRA presets)")
    tok = AutoTokenizer.from_pretrained(init)
    model = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32)
    return model, tok, FORMATS.get(chat_of(init), CHATML)


def sft_adapter(run: RLRun) -> Path:
    """The SFT adapter as a PEFT directory: --init itself, or where its GGUF is read back to."""
    return Path(run.out) / "init-adapter" if Path(run.init).suffix == ".gguf" else Path(run.init)


def rl_tasks(run: RLRun, model, tok, chat, verifier: Verifier) -> list:
    """The task list: --tasks, a file saved by an earlier run, or built and probed now."""
    saved = Path(run.out) / "rl_tasks.jsonl"
    if run.tasks:
        return load_tasks(run.tasks)
    if saved.is_file():
        return load_tasks(saved)
    tasks = candidates(run.n_tasks, seed=run.seed + 1, min_edits=run.min_edits, max_edits=run.max_edits,
                       verifier=verifier)
    stats = {"candidates": len(tasks), "kept": len(tasks)}
    if run.probe_group:
        sampler = TransformersBackend.from_model(model.eval(), tok, chat, temperature=run.temperature,
                                                 top_k=run.top_k, top_p=run.top_p, min_p=run.min_p,
                                                 max_new_tokens=run.max_new_tokens,
                                                 seed=run.seed, grammar=run.grammar)

        def wins(task) -> int:
            group = rollouts([task] * run.probe_group, sampler, rows=run.batch_rows, verifier=verifier,
                             max_turns=run.max_turns, context=run.context)
            return sum(r.solved for r in group)

        def show(i, n, kept):
            print(f"\rprobing RL tasks: {i}/{n}, {kept} kept", end="", file=sys.stderr, flush=True)
        tasks, stats = probe(tasks, wins, run.probe_group, show)
        print(file=sys.stderr)
        model.train()
    print(f"RL tasks: {json.dumps(stats)}", file=sys.stderr, flush=True)
    if not tasks:
        raise ValueError(f"no RL task left after probing ({stats}): the starting model solves none of the "
                         "candidates sometimes; try more --n-tasks, a higher --temperature or --probe-group 0")
    write_tasks(saved, tasks)
    (Path(run.out) / "rl_tasks.json").write_text(json.dumps(stats, indent=2))
    return tasks


def make_rollout_func(run: RLRun, by_id: dict, chat, verifier: Verifier):
    def rollout_func(prompts: list[str], trainer) -> dict:
        model = trainer.accelerator.unwrap_model(trainer.model)
        was_training = model.training
        model.eval()
        seed = run.seed * 1_000_003 + trainer.state.global_step * 1009 + trainer.accelerator.process_index
        sampler = TransformersBackend.from_model(
            model, trainer.processing_class, chat, temperature=run.temperature, top_k=run.top_k,
            top_p=run.top_p, min_p=run.min_p, max_new_tokens=run.max_new_tokens, grammar=run.grammar, seed=seed)
        done = rollouts([by_id[p] for p in prompts], sampler, rows=run.batch_rows, verifier=verifier,
                        seed=seed, max_turns=run.max_turns, reward=run.reward, context=run.context)
        model.train(was_training)
        m = trainer._metrics["train"]
        n = len(done)
        m["episode/solve_rate"].append(sum(r.solved for r in done) / n)
        turns = sum(len(r.turn_spans) for r in done)
        m["episode/invalid_rate"].append(sum(r.invalid_turns for r in done) / max(turns, 1))
        m["episode/turns"].append(turns / n)
        m["episode/over_budget"].append(sum(r.over_budget for r in done) / n)
        m["episode/hacks"].append(sum(bool(r.hacks) for r in done))
        return {"prompt_ids": [r.prompt_ids for r in done], "completion_ids": [r.completion_ids for r in done],
                "logprobs": None, "env_mask": [r.env_mask for r in done],
                "turn_rewards": [r.turn_rewards for r in done], "turn_spans": [r.turn_spans for r in done]}
    return rollout_func


def episode_reward(prompts, completions, turn_rewards, **_) -> list[float]:
    """The episode's return (sum of its per-turn rewards): what TRL logs as `reward`."""
    return [float(sum(r)) for r in turn_rewards]


def _trainer_class(advantage: str):
    import torch
    from accelerate.utils import gather_object
    from trl import GRPOTrainer

    class EpisodeGRPOTrainer(GRPOTrainer):
        """GRPO whose advantages are per turn, shaped (batch, tokens), instead of per sequence."""

        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            everyone = gather_object([x["turn_rewards"] for x in inputs])  # groups may span processes
            g = self.num_generations
            per_group = ADVANTAGES[advantage]
            adv = [a for i in range(0, len(everyone), g) for a in per_group(everyone[i:i + g])]
            start = self.accelerator.process_index * len(inputs)
            rows = token_advantages([x["turn_spans"] for x in inputs], adv[start:start + len(inputs)],
                                    out["completion_ids"].size(1))
            out["advantages"] = torch.tensor(rows, dtype=torch.float32, device=out["completion_ids"].device)
            return out
    return EpisodeGRPOTrainer


def train(run: RLRun) -> Path:
    import torch
    from accelerate import PartialState
    from datasets import Dataset
    from peft import LoraConfig
    from trl import GRPOConfig

    from .sft import use_bf16

    if run.threads:
        torch.set_num_threads(run.threads)
    preset = PRESETS[run.preset]
    out = Path(run.out)
    out.mkdir(parents=True, exist_ok=True)
    # cpu=True first: PartialState is a singleton, and only then does a torchrun launch on CPU
    # become a gloo process group (without it each process would think it is alone)
    state = PartialState(cpu=not torch.cuda.is_available())
    with state.main_process_first():  # one at a time: a GGUF --init is read back into OUT/init-adapter
        model, tok, chat = load_policy(run)
    model.to(state.device)  # the probe's rollouts already run where training will
    verifier = Verifier()
    with state.main_process_first():  # one process builds and probes; the others read the file
        tasks = rl_tasks(run, model, tok, chat, verifier)
    if run.max_steps == 0:
        verifier.close()
        return Path(run.tasks) if run.tasks else out / "rl_tasks.jsonl"
    use_lora = preset.lora if run.lora == "preset" else run.lora == "on"
    config = {"run": asdict(run), "preset": asdict(preset), "chat": chat.name, "lora": use_lora,
              "tasks": len(tasks), "stage": "rl"}
    (out / "coedit.json").write_text(json.dumps(config, indent=2))
    args = GRPOConfig(
        output_dir=str(out), learning_rate=run.lr, max_steps=run.max_steps, beta=run.beta, epsilon=run.epsilon,
        loss_type=run.loss_type, num_generations=run.group, per_device_train_batch_size=run.group,
        gradient_accumulation_steps=run.tasks_per_step, num_iterations=1, logging_steps=run.logging_steps,
        save_steps=run.save_steps, save_total_limit=2, report_to=["tensorboard"], seed=run.seed,
        use_cpu=not torch.cuda.is_available(), bf16=use_bf16(run.bf16), activation_checkpointing=run.checkpointing,
        max_completion_length=run.context, disable_tqdm=False, remove_unused_columns=False,
        dataloader_num_workers=0, log_completions=False)
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(out / "runs")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    by_id = {t.id: t for t in tasks}
    callback = heldout_callback(run, chat, verifier, out / "curves.json")
    cap = time_cap(run)
    trainer = _trainer_class(run.advantage)(
        model=model, reward_funcs=[episode_reward], args=args, processing_class=tok,
        train_dataset=Dataset.from_list([{"prompt": t.id} for t in tasks]),
        rollout_func=make_rollout_func(run, by_id, chat, verifier), callbacks=[callback, cap],
        peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA) if use_lora else None)
    callback.trainer = cap.trainer = trainer
    t0 = time.time()
    resume = run.resume and any(out.glob("checkpoint-*"))
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    seconds = time.time() - t0
    final = out / "final"
    if trainer.accelerator.is_main_process:
        model = trainer.accelerator.unwrap_model(trainer.model)
        if use_lora and is_adapter(run.init):
            # OUT/adapter: the SFT adapter and RL's LoRA as one adapter over the preset's base, so
            # that `trainer export --lora OUT/adapter` ships the RL'd model as small as the SFT one
            save_stacked_adapter(model, sft_adapter(run), out / "adapter")
        model = model.merge_and_unload() if use_lora else model
        model.save_pretrained(final)
        tok.save_pretrained(final)
        episodes = result.global_step * run.tasks_per_step * run.group * trainer.accelerator.num_processes
        config.update(train_seconds=round(seconds, 1), steps=result.global_step, stopped_by_time=cap.stopped,
                      episodes=episodes,
                      episodes_per_second=round(episodes / seconds, 3) if not resume else None,
                      heldout=callback.points)
        for where in (out / "coedit.json", final / "coedit.json"):
            where.write_text(json.dumps(config, indent=2))
        # the per-step log (reward, solve rate, turns, KL, ...) where a time-capped run that saved no
        # checkpoint still has it
        (out / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
        plot_curves(trainer.state.log_history, callback.points, out / "curves.png")
        print(f"saved {final} ({result.global_step} steps, {seconds:.0f}s)", file=sys.stderr)
    verifier.close()
    return final


def main(argv: list[str] | None = None) -> int:
    run = parse_flags(RLRun, argv, "python -m trainer rl", __doc__.split("\n\n")[0])
    if run.preset not in PRESETS:
        print(f"unknown preset {run.preset!r}; choose from {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    if run.reward not in ("paper", "partial"):
        print("--reward must be paper or partial", file=sys.stderr)
        return 2
    if run.advantage not in ADVANTAGES:
        print(f"--advantage must be {' or '.join(ADVANTAGES)}", file=sys.stderr)
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return run_stage(lambda: train(run), run.top_p, run.min_p)
