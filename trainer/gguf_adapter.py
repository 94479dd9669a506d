"""A llama.cpp LoRA GGUF read back into a PEFT adapter directory.

`trainer export --lora` writes the shipped model as `models/default/coedit.gguf`: a LoRA adapter
GGUF over the pip-installed SmolLM2 base. The PEFT adapter it came from lives in a run directory
(`runs/`, git-ignored), which a fresh checkout or a lent GPU machine does not have; reading the
GGUF back lets `trainer rl --init models/default/coedit.gguf` start from the shipped model itself.

This is the inverse of llama.cpp's `convert_lora_to_gguf.py`, which
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
from pathlib import Path


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
