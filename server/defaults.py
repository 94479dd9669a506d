"""The shipped default model: what the server and `make run` use when no model is configured."""
from __future__ import annotations

import os
from pathlib import Path

from .backends import ModelError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "default" / "coedit.gguf"  # see models/default/README.md


def default_model() -> Path:
    """$COEDIT_MODEL, else the model committed under models/default/."""
    path = Path(os.environ.get("COEDIT_MODEL", DEFAULT_MODEL)).expanduser()
    if not path.exists():
        raise ModelError(f"no model at {path}: set the `model` setting to a .gguf file or checkpoint directory "
                         "(or $COEDIT_MODEL), or train one: python -m trainer sft ... && python -m trainer export ...")
    return path
