"""What the model adds to the edit search: two `trainer eval --json` runs of the same tasks, one
with `--proposers search`, one with the model too (the default), compared task by task.

    python bench/proposer_share.py SEARCH.json BOTH.json

Prints: tasks fixed by each run, who found each fix in the combined run, and the tasks only the
model fixes (fixed in the combined run by a model proposer, not fixed by the search alone): the
number the trainer is asked to raise.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path


def rows(path: str) -> dict[str, dict]:
    """A `trainer eval --json` run of the engine, task id -> its row (bench/fix_union.py reads runs
    with this too); a SystemExit that names a file it cannot read or that is not such a run."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"{path}: cannot read it ({e})")
    if not isinstance(data, dict) or "tasks" not in data or not all("fixed" in r for r in data["tasks"]):
        raise SystemExit(f"{path}: not a `trainer eval --json` file of the repair engine")
    return {r["id"]: r for r in data["tasks"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("search")
    ap.add_argument("both")
    args = ap.parse_args()
    a, b = rows(args.search), rows(args.both)
    if set(a) != set(b):
        sys.exit("the two runs are of different tasks")
    only_model = sorted(i for i in b if b[i]["fixed"] and b[i]["fixed_by"].startswith("model") and not a[i]["fixed"])
    lost = sorted(i for i in a if a[i]["fixed"] and not b[i]["fixed"])
    by = Counter(r["fixed_by"] for r in b.values() if r["fixed"])
    print("| tasks | search alone | search + model | fixed by (search + model) | only the model | search alone only |")
    print("|---|---|---|---|---|---|")
    print(f"| {len(a)} | {sum(r['fixed'] for r in a.values())} | {sum(r['fixed'] for r in b.values())} | "
          f"{', '.join(f'{k} {v}' for k, v in sorted(by.items()))} | {len(only_model)} | {len(lost)} |")
    print(f"\nonly the model: {' '.join(only_model) or '-'}")
    print(f"search alone only (the combined run's budget went to the model first): {' '.join(lost) or '-'}")


if __name__ == "__main__":
    main()
