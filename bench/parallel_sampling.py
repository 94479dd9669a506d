"""Line proposals drawn side by side (server/backends/llama_batch.py) against one after another:
seconds per reply, and what the replies are.

    python bench/parallel_sampling.py [--model models/default/coedit.gguf] [--tasks 6] [--n 4 8 16]

For each of the first `--tasks` MBPP-test corruptions (`python -m trainer data --n 1 --out
runs/eval-set` makes them), the tool's first state is the conversation and `REPL k >>>` the forced
start, k the line the state's error names (else line 2). Both arms run in this one process on one
loaded model, alternating, the one-after-another arm first; each arm's prompt is read before its
clock starts. Prints a markdown table:
ratio = sequential seconds / side-by-side seconds (above 1: side by side is faster).
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsl import EditorState, load_tasks, new_conversation  # noqa: E402
from dsl.verifier import Verifier  # noqa: E402
from server.defaults import DEFAULT_MODEL  # noqa: E402


def conversations(path: str, count: int) -> list[tuple[list[dict], str]]:
    """(the tool's first view of a task, a `REPL k >>>` start) for the first `count` tasks."""
    out = []
    verifier = Verifier()
    for task in load_tasks(path)[:count]:
        r = verifier.verify(task.code, task.tests, task.timeout_s)
        state = EditorState.from_code(task.code).render(r.feedback)
        m = re.search(r"line (\d+)", r.feedback)
        k = int(m.group(1)) if m and 1 <= int(m.group(1)) <= len(task.code.splitlines()) else 2
        out.append((new_conversation(task, state), f"REPL {k} >>>"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--tasks-file", default="runs/eval-set/eval_mbpp_test.jsonl")
    ap.add_argument("--tasks", type=int, default=6)
    ap.add_argument("--n", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--temperature", type=float, default=0.7)
    a = ap.parse_args()
    from server.backends.llamacpp import LlamaCppBackend
    model = LlamaCppBackend(a.model, seed=0)
    convs = conversations(a.tasks_file, a.tasks)
    print(f"{len(convs)} conversations; model {a.model}", file=sys.stderr)
    rows = []
    for n in a.n:
        times = {False: [], True: []}
        distinct = {False: 0, True: 0}
        valid = {False: 0, True: 0}
        for messages, prefix in convs:
            for parallel in (False, True):
                model.parallel = parallel
                model.complete(messages, prefix, 2)  # the prompt read (and cached) before the clock
                t = time.perf_counter()
                texts = model.complete(messages, prefix, n, a.temperature)
                times[parallel].append((time.perf_counter() - t) / n)
                distinct[parallel] += len(set(texts))
                valid[parallel] += sum(1 for x in texts if x.startswith(prefix) and len(x) > len(prefix))
        seq, par = statistics.median(times[False]), statistics.median(times[True])
        rows.append((n, seq, par, distinct[False], distinct[True], valid[False], valid[True], len(convs) * n))
    print("| replies per call | s per reply, one after another | s per reply, side by side | ratio "
          "| distinct (one after another / side by side) | well-formed |")
    print("|---|---|---|---|---|---|")
    for n, seq, par, d0, d1, v0, v1, total in rows:
        print(f"| {n} | {seq:.3f} | {par:.3f} | {seq / par:.2f}x | {d0} / {d1} of {total} | {v0} / {v1} |")


if __name__ == "__main__":
    main()
