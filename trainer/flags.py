"""Command-line flags from a run's config dataclass: one `--kebab-name` per field, typed by its
default, booleans as `--x/--no-x`. The dataclass stays the single description of a run. And the
stages' one exit rule: a user's mistake is one line on stderr and exit status 2, not a traceback."""
from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, fields
from typing import Callable

from server.backends import ModelError, checked_cutoffs


def parse_flags(config_class, argv: list[str] | None, prog: str, description: str):
    """An instance of `config_class` from `argv`."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    for f in fields(config_class):
        default = f.default if f.default is not MISSING else f.default_factory()
        flag = f"--{f.name.replace('_', '-')}"
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            p.add_argument(flag, type=type(default), default=default)
    return config_class(**vars(p.parse_args(argv)))


def run_stage(work: Callable[[], object], top_p: float = 1.0, min_p: float = 0.0) -> int:
    """0 once `work()` returns; 2 with `error: ...` on stderr when the model, a file or a value is
    wrong. Sampling's cut-offs are checked first: before minutes of loading, not after."""
    try:
        checked_cutoffs(top_p, min_p)
        work()
    except (ModelError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
