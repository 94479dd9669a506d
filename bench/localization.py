"""Fault localization, measured: where does `dsl.localize` rank the truly buggy line?

    python bench/localization.py [--set quixbugs|mbpp|both] [--limit 100]

QuixBugs (shared/bench/quixbugs.jsonl): the buggy lines come from the upstream reference fix
(bench/quixbugs_buggy_lines.json; for a fix that adds a line, the line before the gap or the one
after it counts). MBPP-test corruptions (`python -m trainer data --n 1 --out runs/eval-set` makes
runs/eval-set/eval_mbpp_test.jsonl): the lines that differ from the MBPP reference solution
(difflib; a deleted line counts at its neighbours). Those references are read here only: the
localizer sees what the engine sees (code, tests, the first run's result).
Prints top-1 / top-3 / top-5 rates and the mean test runs localization spent.
"""
from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsl import Verifier, load_mbpp, load_tasks  # noqa: E402
from dsl.localize import rank, spectrum  # noqa: E402
from dsl.mutate import hints_from_feedback  # noqa: E402

SHARED = Path(__import__("os").environ.get("COEDIT_SHARED", ROOT.parent / "shared"))


def quixbugs() -> list[tuple]:
    truth = json.loads((ROOT / "bench" / "quixbugs_buggy_lines.json").read_text())
    out = []
    for t in load_tasks(SHARED / "bench" / "quixbugs.jsonl"):
        info = truth[t.id]
        lines = set(info["lines"]) | ({info["lines"][0] + 1} if info["kind"] == "missing" else set())
        out.append((t, lines))
    return out


def mbpp(path: Path, limit: int) -> list[tuple]:
    refs = {t.id: t.code for t in load_mbpp(["test"])}
    out = []
    for t in load_tasks(path)[:limit]:
        a, b = refs[t.id].split("\n"), t.code.split("\n")
        lines = set()
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
            if op in ("replace", "insert"):
                lines |= set(range(j1 + 1, j2 + 1))
            elif op == "delete":
                lines |= {max(j1, 1), j1 + 1}
        out.append((t, lines))
    return out


def measure(name: str, cases: list[tuple], v: Verifier) -> str:
    hits = {1: 0, 3: 0, 5: 0}
    runs = 0
    for task, truth in cases:
        first = v.verify(task.code, task.tests, task.timeout_s)
        spec = spectrum(task.code, task.tests, lambda c, t: v.verify(c, t, min(task.timeout_s or 10, 5)), first)
        runs += spec.test_runs if spec else 0
        order = [n for n, _ in rank(task.code, spec, first, hints_from_feedback(first.feedback).undefined)]
        for k in hits:
            hits[k] += bool(truth & set(order[:k]))
    n = len(cases)
    return (f"| {name} | {n} | {100 * hits[1] / n:.0f}% | {100 * hits[3] / n:.0f}% | {100 * hits[5] / n:.0f}% "
            f"| {runs / n:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", default="both", choices=["quixbugs", "mbpp", "both"])
    ap.add_argument("--tasks", default=str(ROOT / "runs" / "eval-set" / "eval_mbpp_test.jsonl"))
    ap.add_argument("--limit", type=int, default=100)
    args = ap.parse_args()
    v = Verifier()
    print("| set | tasks | top-1 | top-3 | top-5 | test runs spent |")
    print("|---|---|---|---|---|---|")
    if args.set in ("quixbugs", "both"):
        print(measure("QuixBugs", quixbugs(), v), flush=True)
    if args.set in ("mbpp", "both"):
        print(measure(f"MBPP-test corruptions (first {args.limit})", mbpp(Path(args.tasks), args.limit), v), flush=True)
    v.close()


if __name__ == "__main__":
    main()
