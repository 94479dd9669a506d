"""Command-line flags from a run's config dataclass: one `--kebab-name` per field, typed by its
default, booleans as `--x/--no-x`. The dataclass stays the single description of a run."""
from __future__ import annotations

import argparse
from dataclasses import MISSING, fields


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
