"""Two models on the same tasks, paired: which tasks each one fixes, and whether the difference is
more than the luck of which tasks were drawn.

    python bench/compare_evals.py --a runs/eval-A-1-25.json runs/eval-A-26-50.json \
                                  --b runs/eval-B-1-25.json runs/eval-B-26-50.json

Each side is one or more `trainer eval --json` files (slices of a task set, e.g. `--limit 25` and
`--skip 25 --limit 25`); both sides must cover the same task ids with the same k. With `--pool`, a
side's files may repeat tasks (runs with another `--seed`): their episodes are pooled, so pass@1
is the mean over the runs and best-of-k counts any episode of any run. Prints the
summary of each side, the tasks where their solve rates or greedy outcomes differ, and for pass@1 the paired difference with a 95%
bootstrap interval over tasks (tasks resampled, seed 0), for the greedy first episode the exact
two-sided sign test over the tasks only one side solves. Small task sets give wide intervals: that
is the point of printing them. With `--a` alone it prints that side's summary row only: one
model's metrics over slices run separately (e.g. `--limit 50` and `--skip 50 --limit 50`).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from math import comb
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.evaluate import metrics  # noqa: E402


def load_side(paths: list[str], pool: bool = False) -> tuple[dict[str, list[dict]], int]:
    """task id -> its episodes, over all the files of one side, and their k (per run)."""
    tasks: dict[str, list[dict]] = {}
    ks = set()
    for path in paths:
        try:
            run = json.loads(Path(path).read_text())
            ks.add(run["k"])
            for task in run["tasks"]:
                if task["id"] in tasks and not pool:
                    raise SystemExit(f"compare_evals: {task['id']} is in more than one file of the same side ({path}); "
                                     "--pool pools repeated runs")
                tasks[task["id"]] = tasks.get(task["id"], []) + task["episodes"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"compare_evals: {path} is not a `trainer eval --json` file ({e!r})")
    if len(ks) > 1:
        raise SystemExit(f"compare_evals: the files {paths} were made with different k: {sorted(ks)}")
    return tasks, ks.pop() if ks else 0


def summary(tasks: dict[str, list[dict]], k: int) -> dict:
    """trainer eval's own metrics over one side, plus how many greedy first episodes solved."""
    m = metrics([{"id": t, "episodes": eps} for t, eps in tasks.items()], k, seconds=0)
    m["greedy"] = sum(eps[0]["solved"] for eps in tasks.values())  # eval's first episode is greedy
    m["episodes"] = sum(len(eps) for eps in tasks.values())
    return m


def solved_pattern(episodes: list[dict], k: int = 0) -> str:
    """'G' a greedy episode solved, 's' a sampled one, '.' not: 'G.s.'; pooled runs of k episodes
    each start with their own greedy one."""
    return "".join(("G" if i % (k or len(episodes)) == 0 else "s") if e["solved"] else "."
                   for i, e in enumerate(episodes))


def bootstrap_ci(diffs: list[float], n: int = 10_000, seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(diffs, k=len(diffs))) / len(diffs) for _ in range(n))
    return means[int(0.025 * n)], means[int(0.975 * n) - 1]


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact p-value that wins and losses are equally likely (ties left out)."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(wins, losses) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


_HEADER = "| model | tasks | episodes | pass@1 | greedy solved | best-of-k | turns | invalid |\n|---|---|---|---|---|---|---|---|"


def _row(name: str, s: dict, n: int) -> str:
    return (f"| {name} | {n} | {s['episodes']} | {100 * s['pass@1']:.1f}% | {s['greedy']}/{n} | "
            f"{round(s['best_of_k'] * n)}/{n} ({100 * s['best_of_k']:.0f}%) | {s['mean_turns']:.2f} | "
            f"{100 * s['invalid_rate']:.1f}% |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", nargs="+", required=True, help="eval JSON files of model A")
    ap.add_argument("--b", nargs="+", default=[], help="eval JSON files of model B; none: A's summary only")
    ap.add_argument("--names", nargs="+", default=[], metavar="NAME", help="names for the table (A, then B)")
    ap.add_argument("--pool", action="store_true", help="a side's files may repeat tasks: pool their episodes")
    args = ap.parse_args(argv)
    if len(args.names) > 2:
        raise SystemExit("compare_evals: --names takes one name per side, two at most")
    na, nb = args.names + ["A", "B"][len(args.names):]
    a, ka = load_side(args.a, args.pool)
    if not a:
        raise SystemExit("compare_evals: no tasks")
    if not args.b:
        print(_HEADER)
        print(_row(na, summary(a, ka), len(a)))
        return 0
    b, kb = load_side(args.b, args.pool)
    if ka != kb:
        raise SystemExit(f"compare_evals: side A was evaluated with k = {ka}, side B with k = {kb}")
    if set(a) != set(b):
        only = sorted(set(a) ^ set(b))
        raise SystemExit(f"compare_evals: the two sides cover different tasks ({len(only)} in one only, e.g. {only[:3]})")
    sa, sb = summary(a, ka), summary(b, kb)
    n = sa["n_tasks"]
    print(_HEADER)
    for name, s in ((na, sa), (nb, sb)):
        print(_row(name, s, n))

    def rate(eps: list[dict]) -> float:
        return sum(e["solved"] for e in eps) / len(eps)

    ids = sorted(a, key=lambda t: (t.split("/")[0], int(t.split("/")[-1]) if t.split("/")[-1].isdigit() else 0, t))
    # by rate, not by pattern: pooled sides may hold different numbers of runs
    differ = [t for t in ids if rate(a[t]) != rate(b[t]) or a[t][0]["solved"] != b[t][0]["solved"]]
    print(f"\ntasks where the solve rates or the greedy outcomes differ ({len(differ)} of {n}; "
          "G greedy solved, s sampled solved):\n")
    print(f"| task | {na} | {nb} |\n|---|---|---|")
    for t in differ:
        print(f"| {t} | {solved_pattern(a[t], ka)} | {solved_pattern(b[t], kb)} |")

    diffs = [rate(b[t]) - rate(a[t]) for t in ids]
    lo, hi = bootstrap_ci(diffs)
    wins = sum(b[t][0]["solved"] and not a[t][0]["solved"] for t in ids)
    losses = sum(a[t][0]["solved"] and not b[t][0]["solved"] for t in ids)
    print(f"\npass@1 {nb} - {na}: {100 * (sb['pass@1'] - sa['pass@1']):+.1f} points "
          f"(95% bootstrap interval over tasks {100 * lo:+.1f} to {100 * hi:+.1f})")
    print(f"greedy: {nb} alone solves {wins}, {na} alone {losses}; sign test p = {sign_test(wins, losses):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
