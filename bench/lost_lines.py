"""Which MBPP-test corruptions an edit search can fix at all: each evaluated task's corrupted code
is compared with MBPP's reference solution, and the tasks are grouped by whether the corruption
lost a line (deleted it, or replaced it with an unrelated one: only a generator such as the model
can write it back) and by how many lines it changed; per group, how many the run fixed.

    python -m trainer data --n 1 --out runs/eval-set
    python -m trainer eval --tasks runs/eval-set/eval_mbpp_test.jsonl --limit 100 --proposers search --json S.json
    python bench/lost_lines.py S.json [MORE.json ...] [--tasks runs/eval-set/eval_mbpp_test.jsonl]

A changed line counts as "token" (kept) when it is still more than 60% like its original
(difflib's ratio), else as replaced. The reference solutions are used here, in a bench, only.
"""
from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dsl import load_mbpp, load_tasks  # noqa: E402

LIKE = 0.6  # above: the same line with a token changed; below: a line lost


def line_changes(original: str, corrupted: str) -> list[str]:
    """One entry per changed line: token, replaced, deleted or inserted."""
    o = [line.strip() for line in original.splitlines()]
    c = [line.strip() for line in corrupted.splitlines()]
    kinds: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, o, c).get_opcodes():
        if tag == "equal":
            continue
        pairs = list(zip(o[i1:i2], c[j1:j2])) if tag == "replace" else []
        kinds += ["token" if difflib.SequenceMatcher(None, a, b).ratio() > LIKE else "replaced" for a, b in pairs]
        kinds += ["deleted"] * max(0, (i2 - i1) - len(pairs))
        kinds += ["inserted"] * max(0, (j2 - j1) - len(pairs))
    return kinds


def group(kinds: list[str]) -> tuple[str, str]:
    lost = "lost a line" if {"deleted", "replaced"} & set(kinds) else "no line lost"
    return lost, f"{len(kinds)} changed" if len(kinds) < 4 else "4+ changed"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="`trainer eval --json` files of the repair engine")
    ap.add_argument("--tasks", default="runs/eval-set/eval_mbpp_test.jsonl")
    args = ap.parse_args()
    reference = {t.id: t.code for t in load_mbpp(["test"])}
    corrupted = {t.id: t.code for t in load_tasks(args.tasks)}
    runs = [json.loads(Path(p).read_text())["tasks"] for p in args.runs]
    ids = [r["id"] for r in runs[0]]
    groups = {i: group(line_changes(reference[i], corrupted[i])) for i in ids}
    total = Counter(groups.values())
    fixed = [Counter(groups[r["id"]] for r in run if r["fixed"]) for run in runs]
    print("| corruption | lines changed | tasks | " + " | ".join(f"fixed ({Path(p).stem})" for p in args.runs) + " |")
    print("|---|---|---|" + "---|" * len(runs))
    for key in sorted(total):
        print(f"| {key[0]} | {key[1]} | {total[key]} | " + " | ".join(str(f[key]) for f in fixed) + " |")
    print(f"| all | | {len(ids)} | " + " | ".join(str(sum(f.values())) for f in fixed) + " |")


if __name__ == "__main__":
    main()
