"""Which order of single edits finds fixes sooner: the edit search alone (`dsl.repair`, proposers
"search"), same budget, same tasks, in one run per order.

    python bench/search_order.py [--quixbugs PATH] [--mbpp runs/eval-set/eval_mbpp_test.jsonl] [--limit 100]

Orders (RepairConfig.order):
  family   each tier's families across all suspect lines (a cheap operator flip at the third
           line before a name swap at the first), lines by suspicion within a family (the default)
  line     line by line in suspicion order, every family at a line before the next (TBar's order)
Both use the same localization and the same candidates; only the order differs. Printed per set:
tasks fixed, and test runs to a fix over the tasks both orders fix (mean and median): the
smaller, the sooner a user gets a fix.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsl import RepairConfig, TaskCheck, Verifier, load_tasks, repair  # noqa: E402

SHARED = Path(os.environ.get("COEDIT_SHARED", ROOT.parent / "shared"))
ORDERS = ("family", "line")


def runs_to_fix(tasks, order: str, v: Verifier, budget: int) -> dict[str, int | None]:
    out = {}
    for t in tasks:
        check = TaskCheck(t, v)
        res = repair(t, check, RepairConfig(proposers=("search",), order=order, runs=budget), run_tests=check.tests)
        out[t.id] = res.at["runs"] if res.status == "fixed" else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quixbugs", default=str(SHARED / "bench" / "quixbugs.jsonl"))
    ap.add_argument("--mbpp", default=str(ROOT / "runs" / "eval-set" / "eval_mbpp_test.jsonl"))
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--runs", type=int, default=400, help="test-run budget per task")
    args = ap.parse_args()
    v = Verifier()
    print("| set | order | fixed | runs to fix, tasks both fix (mean / median) |")
    print("|---|---|---|---|")
    for name, path in (("QuixBugs", args.quixbugs), ("MBPP-test corruptions", args.mbpp)):
        if not Path(path).is_file():
            print(f"| {name} | - | (no {path}) | |")
            continue
        tasks = load_tasks(path)[: args.limit]
        found = {order: runs_to_fix(tasks, order, v, args.runs) for order in ORDERS}
        both = [i for i in found[ORDERS[0]] if all(found[o][i] is not None for o in ORDERS)]
        for order in ORDERS:
            runs = [found[order][i] for i in both]
            fixed = sum(r is not None for r in found[order].values())
            spread = f"{statistics.mean(runs):.1f} / {statistics.median(runs):g}" if runs else "-"
            print(f"| {name} ({len(tasks)}) | {order} | {fixed} | {spread} ({len(both)} tasks) |", flush=True)
    v.close()


if __name__ == "__main__":
    main()
