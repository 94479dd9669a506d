"""python -m trainer <stage> ...: data | sft | rl | eval | export (see each stage's module docstring)."""
from __future__ import annotations

import sys

STAGES = {"data": "trainer.data", "sft": "trainer.sft", "rl": "trainer.rl", "eval": "trainer.evaluate",
          "export": "trainer.export"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in STAGES:
        print(f"usage: python -m trainer {{{','.join(STAGES)}}} [options]   (--help after a stage for its options)",
              file=sys.stderr)
        return 2
    import importlib
    return importlib.import_module(STAGES[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
