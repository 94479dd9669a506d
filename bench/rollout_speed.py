"""RL rollout throughput: one episode at a time (the path before trainer/lockstep.py) against a
step's episodes decoded together, on the same tasks, with the same random streams, in one run.

    python bench/rollout_speed.py                       # the shipped model, RL's recipe (2 tasks x 4)
    python bench/rollout_speed.py --init runs/sft-tiny/final --preset tiny --tasks 4 --group 4

The policy is what `trainer rl --init` starts from (the shipped GGUF adapter read back over
SmolLM2, or a checkpoint). Tasks are the first --tasks of --task-file (default: this checkout's
RL tasks, else fresh MBPP train corruptions), each played --group times, sampled at RL's
temperature. Both paths run every episode through `dsl.run_episode` and the real verifier; the
table says whether every row's tokens came out identical (they must, up to floating-point ties).
Say which machine when quoting the numbers.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsl import Verifier, load_tasks  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--init", default=str(ROOT / "models" / "default" / "coedit.gguf"))
    ap.add_argument("--preset", default="smollm2-135m")
    ap.add_argument("--task-file", default=str(ROOT / "runs" / "rl5-probe" / "rl_tasks.jsonl"))
    ap.add_argument("--tasks", type=int, default=2)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--max-turns", type=int, default=6)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    import torch
    from server.backends import TransformersBackend
    from trainer.lockstep import rollouts
    from trainer.rl import RLRun, load_policy
    from trainer.rl_tasks import candidates
    from trainer.rollout import rollout
    if args.threads:
        torch.set_num_threads(args.threads)
    verifier = Verifier()
    tasks = (load_tasks(args.task_file) if Path(args.task_file).is_file()
             else candidates(args.tasks, seed=1, min_edits=2, max_edits=3, verifier=verifier))[: args.tasks]
    rows = [t for t in tasks for _ in range(args.group)]
    with tempfile.TemporaryDirectory() as scratch:
        model, tok, chat = load_policy(RLRun(preset=args.preset, init=args.init, out=scratch))
    backend = TransformersBackend.from_model(model.eval(), tok, chat, temperature=args.temperature,
                                             max_new_tokens=args.max_new_tokens)
    options = dict(verifier=verifier, max_turns=args.max_turns)
    print(f"{len(rows)} episodes ({len(tasks)} tasks x {args.group}) of {args.init}, "
          f"{torch.get_num_threads()} threads, {'cuda' if torch.cuda.is_available() else 'cpu'}", file=sys.stderr)

    t0 = time.perf_counter()
    alone = []
    for i, task in enumerate(rows):
        backend.rng = random.Random(args.seed * 1_000_003 + i)  # row i's stream in the batched path
        alone.append(rollout(task, backend, **options))
        print(f"\rone at a time: {i + 1}/{len(rows)}", end="", file=sys.stderr, flush=True)
    t1 = time.perf_counter()
    print(file=sys.stderr)
    together = rollouts(rows, backend, seed=args.seed, **options)
    t2 = time.perf_counter()
    verifier.close()

    same = sum(a.completion_ids == b.completion_ids for a, b in zip(alone, together))
    tokens = sum(sum(a.env_mask) for a in alone)
    print("| rollouts | episodes | sampled tokens | seconds | episodes/s | solved |")
    print("|---|---|---|---|---|---|")
    for name, got, secs in (("one at a time", alone, t1 - t0), ("batched (lockstep)", together, t2 - t1)):
        print(f"| {name} | {len(got)} | {sum(sum(r.env_mask) for r in got)} | {secs:.1f} | "
              f"{len(got) / secs:.3f} | {sum(r.solved for r in got)} |")
    print(f"\nidentical episodes: {same}/{len(rows)} ({tokens} sampled tokens one at a time)")
    print(f"speedup: {(t1 - t0) / (t2 - t1):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
