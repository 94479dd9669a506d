"""server.backends: the decoding stack — a local model turned into the next command.

A backend is a `dsl` policy (`backend(messages) -> str`; `backend(messages, temperature=t)` draws
one reply at `t`), so the language server, `coedit fix`, the trainer's evaluation and RL rollouts
all drive models the same way, through `dsl.run_episode` and `dsl.repair`. Public face:

* `load_backend(path)`: a `.gguf` file (`LlamaCppBackend`, llamacpp.py), a checkpoint directory
  (`TransformersBackend`, transformers.py) or `scripted:FILE` (`ScriptedBackend`, not a model).
* `Lockstep`, `row_stream` (lockstep.py): many episodes' replies decoded in one batch (RL on GPUs).
* `TokenFormat`, `FORMATS`, `CHATML` (tokens.py): the one token format, for training and serving.
* `ModelError`, `chat_of`, `pip_gguf`, … (model_files.py): model files, without loading a model.
* `TOP_P`, `MIN_P`, `checked_cutoffs` (sampling.py); `reply_limit` (limits.py).

Every backend encodes with `TokenFormat` (the format the model was trained on) and, with
`grammar="code"` (the default), can only write commands that apply to the code in view (read back
from the last tool turn by `dsl.lines_in_view`); `grammar="syntax"` allows any well-formed command
(grammar.py). A conversation that no longer fits the model's context ends with EXIT (counted in
`overflows`), never with a truncated context. Sampling cuts candidates the same way in both model
backends (sampling.py). Both also `score` given replies, and the llama.cpp one `complete`s a forced
start (`REPL 5 >>>`: the repair engine's line proposals). Local paths only; nothing is downloaded.
Importing this package loads nothing heavy: torch and llama.cpp load with a model.
The server, `coedit fix` and `trainer eval` run a backend in its own process (server/model_process.py).
"""
from __future__ import annotations

from pathlib import Path

from .limits import reply_limit
from .llamacpp import LlamaCppBackend
from .lockstep import Lockstep, row_stream
from .model_files import ModelError, chat_of, gguf_meta, lora_base, pip_gguf, require_model
from .sampling import MIN_P, TOP_P, checked_cutoffs
from .scripted import ScriptedBackend
from .tokens import CHATML, FORMATS, ChatFormat, TokenFormat
from .transformers import TransformersBackend

__all__ = [
    "load_backend", "LlamaCppBackend", "TransformersBackend", "ScriptedBackend", "Lockstep", "row_stream",
    "ModelError", "chat_of", "gguf_meta", "lora_base", "pip_gguf", "require_model", "MIN_P", "TOP_P",
    "checked_cutoffs", "reply_limit", "CHATML", "FORMATS", "ChatFormat", "TokenFormat",
]


def load_backend(path: str | Path, **options) -> TransformersBackend | LlamaCppBackend | ScriptedBackend:
    """A backend for a local model: a `.gguf` file (llama.cpp) or a checkpoint directory
    (or `scripted:FILE`, see scripted.py)."""
    if str(path).startswith("scripted:"):
        return ScriptedBackend(str(path)[len("scripted:"):])
    require_model(str(path))
    path = Path(path).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelError(f"{path}: not a .gguf file")
        return LlamaCppBackend(path, **options)
    options.pop("n_gpu_layers", None)
    options.pop("n_ctx", None)
    return TransformersBackend(path, **options)

