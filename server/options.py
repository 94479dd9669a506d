"""Settings of the language server and `coedit fix`: typed, with defaults, from the client's JSON.

Clients send camelCase (`maxTurns`) in `initializationOptions` and in `workspace/configuration`
(section `coedit`); unknown keys and values of the wrong type are reported and the default kept.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields


@dataclass(kw_only=True)
class Options:
    model: str = ""  # a .gguf file or a checkpoint directory; empty: the shipped default model
    backend: str = "auto"  # auto (by path) | llama.cpp | transformers
    gpu_layers: int = 0  # llama.cpp: layers offloaded to a GPU (-1: all)
    threads: int = 0  # CPU threads for the model; 0: all cores
    runs: int = 400  # test runs per fix, all proposers together (the repair engine's budget)
    seconds: float = 30.0  # wall clock per fix
    proposers: list[str] = field(default_factory=lambda: ["search", "model"])  # search | model | lines | episodes
    k: int = 8  # model episodes at most (the first greedy); RepairConfig.episodes, a test holds them equal
    max_turns: int = 10  # commands per episode
    temperature: float = 0.7  # sampling for episodes after the first (the first is greedy)
    redraws: int = 0  # a command that would bring back code the episode had is drawn again (0: off)
    timeout: float = 30.0  # seconds for one run of the tests
    tests: list[str] = field(default_factory=list)  # test files or file::test to use instead of discovery
    python: str = ""  # the workspace's interpreter; empty: .venv/venv in the root, else the server's
    warm: bool = True  # keep one pytest session warm per Fix (a fork per check); false: pytest afresh each time
    idle_unload: float = 600.0  # seconds without use after which the model is unloaded (0: never)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def options_from_json(data: object, base: Options | None = None) -> tuple[Options, list[str]]:
    """(options, problems): `data` (a JSON object) over `base` (or the defaults)."""
    opts = Options(**{f.name: getattr(base, f.name) for f in fields(Options)}) if base else Options()
    problems: list[str] = []
    if data in (None, [], {}):  # some clients send [] for an empty table
        return opts, problems
    if not isinstance(data, dict):
        return opts, [f"settings must be an object, not {type(data).__name__}"]
    known = {f.name: f for f in fields(Options)}
    for key, value in data.items():
        name = _snake(key)
        if name not in known:
            problems.append(f"unknown setting {key!r}")
            continue
        default = getattr(Options(), name)
        want = type(default)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if want is list and isinstance(value, list) and all(isinstance(v, str) for v in value):
            setattr(opts, name, list(value))
        elif isinstance(value, want) and not (want is int and isinstance(value, bool)):
            setattr(opts, name, value)
        else:
            problems.append(f"setting {key!r} must be {want.__name__}, got {value!r}; using {getattr(opts, name)!r}")
    if opts.redraws < 0 or opts.temperature < 0:
        problems.append("redraws and temperature must be 0 or more; using the defaults")
        opts.redraws, opts.temperature = Options().redraws, Options().temperature
    if opts.k < 1 or opts.max_turns < 1 or opts.timeout <= 0 or opts.runs < 1 or opts.seconds <= 0:
        problems.append("k, maxTurns, timeout, runs and seconds must be positive; using the defaults")
        for name in ("k", "max_turns", "timeout", "runs", "seconds"):
            setattr(opts, name, getattr(Options(), name))
    bad = [p for p in opts.proposers if p not in ("search", "model", "lines", "episodes")]
    if bad or not opts.proposers:
        problems.append(f"proposers must be some of search, model, lines, episodes, not {opts.proposers!r}")
        opts.proposers = Options().proposers
    if opts.backend not in ("auto", "llama.cpp", "transformers"):
        problems.append(f"backend must be auto, llama.cpp or transformers, not {opts.backend!r}")
        opts.backend = "auto"
    return opts, problems
