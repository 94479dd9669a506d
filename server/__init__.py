"""server: the coedit language server ("Fix with model"), `coedit fix`, and the decoding stack.

* server.py wires LSP methods (codeAction, executeCommand coedit.fix / cancel / report) to plain
  functions; jobs.py runs a fix in the background and lands it as one versioned edit.
* fix.py: one Fix — the target function (target.py), its tests (discovery.py, workspace_check.py),
  the `dsl.repair` engine with the model as a proposer, and the result; cli.py is `coedit fix`.
* backends/: local models turned into the next command (llama.cpp, transformers, lockstep batches,
  the one token format); model_process.py runs one in its own process, so a native crash never
  takes the server down. options.py and defaults.py: the settings and the shipped model.

Builds on `dsl`; never imports `trainer` (import-linter contracts in pyproject.toml). Importing this
package loads nothing heavy: pygls is imported by `server.server` only, torch and llama.cpp by the
backends when a model is loaded. docs/server.md has the reference.
"""
__version__ = "0.1.0"
