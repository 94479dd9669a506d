"""trainer: `python -m trainer <stage>` — data, sft, rl, eval, export (docs/training.md).

* `data` (data.py, corrupt.py): SFT rows from MBPP train+validation, each a corrupted program
  repaired by the reversed chain of edits; the evaluation set from MBPP test.
* `sft` (sft.py, presets.py): supervised fine-tuning with TRL/PEFT, on rows encoded by the one token
  format (`server.backends.TokenFormat`); presets from a tiny scratch model to 3B on GPUs.
* `rl` (rl.py, rollout.py, rl_tasks.py, rl_callbacks.py): multi-turn GRPO; every episode is a
  `dsl.run_episode`, sampled by `server.backends` decoding (one at a time, or in lockstep batches).
* `eval` (evaluate.py): exactly what Fix does — the `dsl.repair` engine with the model as one proposer.
* `export` (export.py, adapters.py): GGUF files, or a LoRA adapter GGUF over a pip-installed base.

Built on `dsl` and `server.backends` only (import-linter contracts in pyproject.toml); the language
server never imports it. Importing this package loads nothing heavy: torch loads with a stage.
"""
