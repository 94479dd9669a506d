"""What several runs of the repair engine on the same tasks reach together: a drawn proposer (the
model's samples) fixes some tasks in one run and not in the next, so one run's total understates
what its settings can find, and the union of the runs bounds what any one run of them would get.

    python bench/fix_union.py RUN.json [RUN.json ...]

Each file is a `trainer eval --json` run of the engine. Prints a table with each run's fixed
count and who fixed them; then the tasks every run fixed, those only some runs fixed (drawn: each
with how many runs fixed it and who), those none fixed; and the union, as a count and a share.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proposer_share import rows  # noqa: E402  (the one reader of engine runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", metavar="RUN.json")
    args = ap.parse_args(argv)
    runs = [rows(p) for p in args.runs]
    ids = set(runs[0])
    if any(set(r) != ids for r in runs[1:]):
        sys.exit("the runs are not of the same tasks")
    print("| run | tasks | fixed | fixed by |")
    print("|---|---|---|---|")
    for path, run in zip(args.runs, runs):
        by = Counter(r["fixed_by"] for r in run.values() if r["fixed"])
        print(f"| {Path(path).name} | {len(run)} | {sum(r['fixed'] for r in run.values())} | "
              f"{', '.join(f'{k} {v}' for k, v in sorted(by.items()))} |")
    hits = {i: [run[i] for run in runs if run[i]["fixed"]] for i in sorted(ids, key=task_order)}
    always = [i for i, h in hits.items() if len(h) == len(runs)]
    drawn = [i for i, h in hits.items() if 0 < len(h) < len(runs)]
    union = len(always) + len(drawn)
    print(f"\nfixed by every run: {len(always)}")
    print(f"fixed by some runs only: {len(drawn)}")
    for i in drawn:
        print(f"  {i}: {len(hits[i])}/{len(runs)} ({', '.join(r['fixed_by'] for r in hits[i])})")
    print(f"fixed by none: {len(ids) - union}")
    print(f"union: {union}/{len(ids)} ({100 * union / len(ids):.0f}%)")
    return 0


def task_order(task_id: str) -> tuple:
    """mbpp/9 before mbpp/10; other ids by name."""
    head, _, tail = task_id.rpartition("/")
    return (head, int(tail)) if tail.isdigit() else (task_id, -1)


if __name__ == "__main__":
    sys.exit(main())
