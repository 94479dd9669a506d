"""The VS Code extension's settings, as the server reads them: every `coedit.*` setting but the
interpreter (which only picks the Python that runs the server) is a server option with the same
default, so what the extension sends with nothing configured is the server's defaults, with no
warnings. (The extension's own tests, under node, check the TypeScript side: `make vscode-test`.)
"""
from __future__ import annotations

import json
from pathlib import Path

from server.options import Options, options_from_json

MANIFEST = Path(__file__).resolve().parents[1] / "editors" / "vscode" / "package.json"


def test_the_extensions_default_settings_are_the_servers_defaults():
    properties = json.loads(MANIFEST.read_text())["contributes"]["configuration"]["properties"]
    sent = {key.removeprefix("coedit."): p["default"] for key, p in properties.items() if key != "coedit.interpreter"}
    opts, problems = options_from_json(sent)
    assert problems == []
    assert opts == Options()
    changed, problems = options_from_json({**sent, "model": "/m.gguf", "gpuLayers": -1, "k": 2}, opts)
    assert problems == [] and (changed.model, changed.gpu_layers, changed.k) == ("/m.gguf", -1, 2)
