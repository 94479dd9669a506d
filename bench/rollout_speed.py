"""RL rollout throughput, on the same episodes (same tasks, same random streams) in one run:
1. one at a time, every position's logits computed (the transformers backend before it asked for
   the last position's only: a prefill of N tokens then also made N vocabulary-sized rows);
2. one at a time (`trainer rl --batch-rows 0`, the default);
3. all decoded together in lockstep (`server/backends/lockstep.py`, `--batch-rows N`).

    python bench/rollout_speed.py                       # the shipped model, RL's recipe (2 tasks x 4)
    python bench/rollout_speed.py --init runs/sft-tiny/final --preset tiny --tasks 4 --group 4

The policy is what `trainer rl --init` starts from (the shipped GGUF adapter read back over
SmolLM2, or a checkpoint). Tasks are the first --tasks of --task-file (default: this checkout's
RL tasks, else fresh MBPP train corruptions), each played --group times, sampled at RL's
temperature. Both paths run every episode through `dsl.run_episode` and the real verifier; the
table says whether each path's episodes are token for token those of path 2 (they must be, up to
floating-point ties).
Say which machine when quoting the numbers.
"""
from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsl import Verifier, load_tasks  # noqa: E402


class EveryPositionsLogits:
    """The model as the backend used to call it: `logits_to_keep` dropped, so all logits are made."""

    def __init__(self, model):
        self.model, self.device = model, model.device

    def __call__(self, **inputs):
        inputs.pop("logits_to_keep", None)
        return self.model(**inputs)


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
    from server.backends import row_stream
    from trainer.rollout import rollouts
    from trainer.rl import RLRun, load_policy
    from trainer.rl_tasks import candidates
    from trainer.rollout import rollout
    if args.threads:
        torch.set_num_threads(args.threads)
    verifier = Verifier()
    tasks = (load_tasks(args.task_file) if Path(args.task_file).is_file()
             else candidates(args.tasks, seed=1, min_edits=2, max_edits=3, verifier=verifier))[: args.tasks]
    episodes = [t for t in tasks for _ in range(args.group)]
    with tempfile.TemporaryDirectory() as scratch:
        model, tok, chat = load_policy(RLRun(preset=args.preset, init=args.init, out=scratch))
    backend = TransformersBackend.from_model(model.eval(), tok, chat, temperature=args.temperature,
                                             max_new_tokens=args.max_new_tokens)
    options = dict(verifier=verifier, max_turns=args.max_turns)
    print(f"{len(episodes)} episodes ({len(tasks)} tasks x {args.group}) of {args.init}, "
          f"{torch.get_num_threads()} threads, {'cuda' if torch.cuda.is_available() else 'cpu'}", file=sys.stderr)

    def measure(label: str, play) -> tuple[list, float, int]:
        t0 = time.perf_counter()
        done = play()
        secs = time.perf_counter() - t0
        print(f"{label}: {secs:.1f}s", file=sys.stderr, flush=True)
        return done, secs, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024

    def one_at_a_time() -> list:
        done = []
        for i, task in enumerate(episodes):
            backend.rng = random.Random(row_stream(args.seed, i))  # episode i's stream in lockstep
            done.append(rollout(task, backend, **options))
        return done

    backend.model = EveryPositionsLogits(model)
    before = measure("one at a time, every position's logits", one_at_a_time)
    backend.model = model
    alone = measure("one at a time", one_at_a_time)
    together = measure("lockstep", lambda: rollouts(episodes, backend, rows=len(episodes), seed=args.seed,
                                                    **options))
    verifier.close()

    print("| rollouts | episodes | sampled tokens | seconds | episodes/s | solved | same episodes as 2 | "
          "peak RSS so far (MB) | speed vs 1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    paths = (("1. one at a time, every position's logits", before), ("2. one at a time", alone),
             (f"3. lockstep, {len(episodes)} rows", together))
    for name, (got, secs, peak) in paths:
        same = sum(a.completion_ids == b.completion_ids for a, b in zip(alone[0], got))
        print(f"| {name} | {len(got)} | {sum(sum(r.env_mask) for r in got)} | {secs:.1f} | "
              f"{len(got) / secs:.3f} | {sum(r.solved for r in got)} | {same}/{len(got)} | {peak} | "
              f"{before[1] / secs:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
