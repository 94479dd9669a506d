"""python -m trainer <stage> ...: data | sft | eval | export (see each stage's module docstring)."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stages = {"data": "trainer.data", "sft": "trainer.sft", "eval": "trainer.evaluate", "export": "trainer.export"}
    if not argv or argv[0] not in stages:
        print(f"usage: python -m trainer {{{','.join(stages)}}} [options]   (--help after a stage for its options)",
              file=sys.stderr)
        return 2
    import importlib
    return importlib.import_module(stages[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
