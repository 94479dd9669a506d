"""Where a Fix's budget goes: per proposer, the test runs it spent and the fixes it found first,
from `trainer eval --json` runs of the repair engine; and which budget the unfixed tasks ran into.

    python bench/budget_share.py RUN.json [MORE.json ...]

Per file: a markdown table (proposer, test runs, share of all runs, fixes found first, fixes per
1,000 runs), then the unfixed tasks that ended at the run budget and at the wall budget. With more
than one file: the tasks any of them fixed (the union), which shows how much sampling decides.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--run-budget", type=int, default=400)
    ap.add_argument("--wall-budget", type=float, default=30.0)
    args = ap.parse_args()
    fixed_sets = []
    for path in args.runs:
        rows = json.loads(Path(path).read_text())["tasks"]
        spent, found = Counter(), Counter(r["fixed_by"] for r in rows if r["fixed"])
        for r in rows:
            spent.update(r["runs_by"])
        total = sum(spent.values())
        print(f"### {path}: {sum(found.values())} of {len(rows)} fixed\n")
        print("| proposer | test runs | share | fixes found first | fixes per 1,000 runs |")
        print("|---|---|---|---|---|")
        for name, n in spent.most_common():
            print(f"| {name} | {n} | {n / total:.0%} | {found[name]} | {1000 * found[name] / n:.1f} |")
        unfixed = [r for r in rows if not r["fixed"]]
        at_runs = sum(r["test_runs"] >= args.run_budget for r in unfixed)
        at_wall = sum(r["seconds"] >= args.wall_budget - 0.5 for r in unfixed)
        print(f"\nunfixed: {len(unfixed)}; ended at the run budget: {at_runs}; within 0.5 s of the wall budget: "
              f"{at_wall}\n")
        fixed_sets.append({r["id"] for r in rows if r["fixed"]})
    if len(fixed_sets) > 1:
        union, common = set().union(*fixed_sets), set.intersection(*fixed_sets)
        print(f"fixed by any run: {len(union)}; by every run: {len(common)}")


if __name__ == "__main__":
    main()
