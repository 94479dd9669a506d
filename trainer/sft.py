"""Stage 2 — supervised fine-tuning with TRL's SFTTrainer.

    python -m trainer sft --preset tiny --data runs/data/sft_coe.jsonl --out runs/sft-tiny
    python -m trainer sft --preset tiny --mode direct --data runs/data/sft_direct.jsonl --out runs/direct-tiny
    python -m trainer sft --preset smollm2-135m --max-rows 2000 --out runs/sft-smollm2
    python -m trainer sft ... --resume            # continue from the last checkpoint in --out
    python -m trainer sft ... --max-minutes 5     # stop (and save) after 5 minutes of training
    python -m trainer sft --mode direct --data runs/data/sft_direct.jsonl --same-rows-as runs/sft-smollm2 ...

Rows are built by `server.backends.TokenFormat`, the code the backends serve with, so training and
inference see identical tokens; the loss is on the assistant's tokens only (commands and their
stop token; in Direct mode, the fixed program). Rows longer than the preset's context are
dropped, not truncated. The run's full config goes to `OUT/coedit.json` and tensorboard logs to
`OUT/runs`; the final model (merged, when LoRA) and tokenizer to `OUT/final`.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from server.backends import TokenFormat

from .flags import parse_flags
from .presets import LORA, PRESETS, build, chat_format, conversation_texts


@dataclass
class SFTRun:
    preset: str = "tiny"  # a name from trainer/presets.py
    data: str = "runs/data/sft_coe.jsonl"  # from `python -m trainer data`
    out: str = "runs/sft-tiny"
    mode: str = "coe"  # coe | direct (only recorded: the data file decides what is learned)
    base: str = ""  # local weights for GPU presets
    epochs: float = 1.0
    max_steps: int = -1  # overrides epochs when > 0
    max_minutes: float = 0.0  # stop training after this long and save what was reached; 0: no limit
    max_rows: int = 0  # 0: every row (counted after the length filter)
    max_row_tokens: int = 0  # drop rows longer than this; 0: the preset's context
    same_rows_as: str = ""  # a previous run's --out: train on exactly the corruptions it used (by id)
    checkpointing: bool = False  # activation checkpointing: less memory, ~1/3 more compute
    bf16: str = "auto"  # auto | on | off — bf16 autocast; auto: on a GPU, or a CPU with AVX512-BF16/AMX
    lr: float = 0.0  # 0: the preset's
    batch_size: int = 8  # rows per device step
    grad_accum: int = 1
    warmup_ratio: float = 0.03
    lora: str = "preset"  # preset | on | off
    seed: int = 0
    save_steps: int = 500
    logging_steps: int = 10
    threads: int = 0  # torch threads; 0: all cores
    tiny_random: bool = False  # GPU presets: tiny random config, for tests
    resume: bool = False


def load_rows(path: str, limit: int = 0) -> list[dict]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such data file (make it with: python -m trainer data)")
    rows = []
    with open(path) as f:
        for line in f:
            rows.append(json.loads(line))
            if limit and len(rows) >= limit:
                break
    return rows


def tokenize_rows(rows: list[dict], fmt: TokenFormat, context: int, limit: int = 0) -> tuple[list[dict], list[str], int]:
    """Dataset rows {input_ids, labels} (labels -100 outside assistant tokens), their ids, and how
    many were dropped as longer than `context`; at most `limit` rows when limit > 0."""
    out, ids_used, dropped = [], [], 0
    for r in rows:
        if limit and len(out) >= limit:
            break
        ids, mask = fmt.encode(r["messages"])
        if len(ids) > context:
            dropped += 1
            continue
        out.append({"input_ids": ids, "labels": [t if m else -100 for t, m in zip(ids, mask)]})
        ids_used.append(r.get("id", str(len(ids_used))))
    return out, ids_used, dropped


def select_same_rows(rows: list[dict], run_dir: str) -> list[dict]:
    """The rows whose ids another run trained on (its rows.txt), in that run's order."""
    listed = Path(run_dir) / "rows.txt"
    if not listed.is_file():
        raise FileNotFoundError(f"{listed}: no such file (--same-rows-as takes the --out of a finished sft run)")
    wanted = listed.read_text().split()
    by_id = {r.get("id"): r for r in rows}
    missing = [i for i in wanted if i not in by_id]
    if missing:
        raise FileNotFoundError(f"{len(missing)} ids of {listed} are not in this data file (first: {missing[0]})")
    return [by_id[i] for i in wanted]


def use_bf16(setting: str) -> bool:
    import torch
    if setting in ("on", "off"):
        return setting == "on"
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    # measured on the 2-core dev machine (AVX512-BF16): SmolLM2-135M LoRA steps run ~1.5x faster
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def train(run: SFTRun) -> Path:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    if run.threads:
        torch.set_num_threads(run.threads)
    preset = PRESETS[run.preset]
    rows = load_rows(run.data)
    if run.same_rows_as:
        rows = select_same_rows(rows, run.same_rows_as)
    texts = conversation_texts(run.data) if preset.source == "scratch" or run.tiny_random else None
    model, tok = build(preset, base=run.base or None, tokenizer_texts=texts, tiny_random=run.tiny_random)
    fmt = TokenFormat(tok, chat_format(preset))
    longest = min(run.max_row_tokens or preset.context, preset.context)
    data, ids_used, dropped = tokenize_rows(rows, fmt, longest, run.max_rows)
    if not data:
        raise ValueError(f"no rows left to train on (all longer than {longest} tokens?)")
    n_tokens = sum(len(r["input_ids"]) for r in data)
    print(f"{run.preset}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
          f"{len(data)} rows ({dropped} longer than {longest} dropped), {n_tokens / 1e6:.2f}M tokens",
          file=sys.stderr, flush=True)
    use_lora = preset.lora if run.lora == "preset" else run.lora == "on"
    out = Path(run.out)
    out.mkdir(parents=True, exist_ok=True)
    config = {"run": asdict(run), "preset": asdict(preset), "chat": fmt.chat.name, "lora": use_lora,
              "rows": len(data), "dropped": dropped, "tokens": n_tokens}
    (out / "coedit.json").write_text(json.dumps(config, indent=2))
    (out / "rows.txt").write_text("\n".join(ids_used) + "\n")
    bf16 = use_bf16(run.bf16)
    args = SFTConfig(
        output_dir=str(out), per_device_train_batch_size=run.batch_size, gradient_accumulation_steps=run.grad_accum,
        learning_rate=run.lr or preset.lr, num_train_epochs=run.epochs, max_steps=run.max_steps,
        lr_scheduler_type="cosine", warmup_steps=run.warmup_ratio, logging_steps=run.logging_steps,
        save_steps=run.save_steps, save_total_limit=2, report_to=["tensorboard"],
        seed=run.seed, max_length=None, dataset_kwargs={"skip_prepare_dataset": True},
        remove_unused_columns=False, train_sampling_strategy="group_by_length", dataloader_num_workers=0,
        disable_tqdm=False, use_cpu=not torch.cuda.is_available(), bf16=bf16,
        # TRL turns activation checkpointing on by default: a third more compute, and our models'
        # activations fit in memory (smollm2-135m, 8 rows of 600 tokens: ~9 GiB)
        activation_checkpointing=run.checkpointing,
    )
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(out / "runs")
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(data), processing_class=tok,
                         peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA) if use_lora else None,
                         callbacks=[_time_limit(run.max_minutes)] if run.max_minutes > 0 else None)
    t0 = time.time()
    resume = run.resume and any(out.glob("checkpoint-*"))
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    seconds = time.time() - t0
    final = out / "final"
    if use_lora:  # the adapter alone too: `trainer export --lora` ships it small, over the base GGUF
        trainer.model.save_pretrained(out / "adapter")
    model = trainer.model.merge_and_unload() if use_lora else trainer.model
    model.save_pretrained(final)
    tok.save_pretrained(final)
    _check_reload(final, tok, rows[0]["messages"])
    planned = trainer.state.max_steps
    # a run cut short by --max-minutes saw only part of its rows: say so, and how far it got
    config.update(train_seconds=round(seconds, 1), train_loss=result.training_loss, steps=result.global_step,
                  planned_steps=planned, stopped_by_time=run.max_minutes > 0 and result.global_step < planned,
                  tokens_per_second=round(n_tokens * run.epochs * result.global_step / planned / seconds, 1)
                  if run.max_steps <= 0 else None)
    (out / "coedit.json").write_text(json.dumps(config, indent=2))
    (final / "coedit.json").write_text(json.dumps(config, indent=2))
    cut = f" of {planned}, stopped by --max-minutes" if config["stopped_by_time"] else ""
    print(f"saved {final} (loss {result.training_loss:.3f}, {result.global_step} steps{cut}, {seconds:.0f}s)",
          file=sys.stderr)
    return final


def _time_limit(minutes: float):
    """A callback that ends training once `minutes` have passed since the first step; the trainer
    then saves as after a full run. Sessions with a fixed time budget (a lent GPU, a CI job) need
    a run that stops itself rather than one killed before it saves."""
    from transformers import TrainerCallback

    class TimeLimit(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.time()

        def on_step_end(self, args, state, control, **kwargs):
            if time.time() - self.start > minutes * 60:
                control.should_training_stop = True
            return control

    return TimeLimit()


def _check_reload(final: Path, tok, messages: list[dict]) -> None:
    """The saved tokenizer must split text exactly as the one we trained with: transformers may
    pick a model-specific tokenizer class on reload, and serving would then see other tokens."""
    from transformers import AutoTokenizer
    again = AutoTokenizer.from_pretrained(final)
    text = "\n".join(m["content"] for m in messages)
    if again.encode(text, add_special_tokens=False) != tok.encode(text, add_special_tokens=False):
        raise RuntimeError(f"{final}: the reloaded tokenizer ({type(again).__name__}) tokenizes differently "
                           "from the one trained with; the checkpoint would be served other tokens")


def main(argv: list[str] | None = None) -> int:
    run = parse_flags(SFTRun, argv, "python -m trainer sft", __doc__.split("\n\n")[0])
    if run.preset not in PRESETS:
        print(f"unknown preset {run.preset!r}; choose from {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        train(run)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
