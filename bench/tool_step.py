"""Per-step latency of the tool: apply one command + verify, over the MBPP test split.

    python bench/tool_step.py [--n 500] [--timeout 10]

Each step applies `REPL 1 >>><line 1>` (a real edit that keeps the code as it was) and verifies
the result, in the same run on the same tasks:
  warm          the dsl Verifier's warm fork server inside bubblewrap (what episodes use: the
                next run's child is prepared while the caller works, as a model does between turns)
  warm-b2b      the same verification again at once, back-to-back: the child is still being
                prepared, so this is the latency of a tight loop (e.g. enumerative search)
  fresh         a new sandboxed interpreter per run (the dsl fallback)
  python        a bare `python -c code+tests` subprocess per run, no sandbox: the baseline
and prints a table and a last line `speedup: <x>x` (median python / median warm).
Agreement checks that all three modes judge every task the same way.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsl import Command, EditorState, Verifier, isolation, load_mbpp  # noqa: E402


def bare_python(code: str, tests: str, timeout: float) -> bool:
    try:
        return subprocess.run([sys.executable, "-c", code + "\n\n" + tests], capture_output=True,
                              timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=500, help="tasks from the MBPP test split (default all 500)")
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args()
    tasks = load_mbpp(["test"])[: args.n]
    warm, fresh = Verifier("fork"), Verifier("fresh")
    warm.verify("x = 1", "assert x == 1")  # start the fork server outside the timing
    times: dict[str, list[float]] = {"warm": [], "warm-b2b": [], "fresh": [], "python": []}
    verdicts: dict[str, list[bool]] = {k: [] for k in times}
    for i, task in enumerate(tasks):
        state = EditorState.from_code(task.code)
        code = state.apply(Command("REPL", 1, state.lines[0])).to_code()
        for mode, run in (("warm", lambda: warm.verify(code, task.tests, args.timeout).passed),
                          ("warm-b2b", lambda: warm.verify(code, task.tests, args.timeout).passed),
                          ("fresh", lambda: fresh.verify(code, task.tests, args.timeout).passed),
                          ("python", lambda: bare_python(code, task.tests, args.timeout))):
            t0 = time.perf_counter()
            ok = run()
            times[mode].append((time.perf_counter() - t0) * 1000)
            verdicts[mode].append(ok)
        if (i + 1) % 100 == 0:
            print(f"  {i + 1}/{len(tasks)} tasks", file=sys.stderr, flush=True)
    warm.close()
    agree = sum(len(set(v)) == 1 for v in zip(*verdicts.values()))
    print(f"\nTool step latency (apply + verify), {len(tasks)} MBPP test tasks, sandbox isolation: {isolation()}\n")
    print("| mode | median ms | p90 ms | mean ms | tasks passing |")
    print("|---|---|---|---|---|")
    for mode, ts in times.items():
        p90 = statistics.quantiles(ts, n=10)[-1] if len(ts) > 1 else ts[0]
        print(f"| {mode} | {statistics.median(ts):.2f} | {p90:.2f} | {statistics.mean(ts):.2f} | {sum(verdicts[mode])} |")
    print(f"\nverdicts agree on {agree}/{len(tasks)} tasks")
    print(f"speedup: {statistics.median(times['python']) / statistics.median(times['warm']):.1f}x")


if __name__ == "__main__":
    main()
