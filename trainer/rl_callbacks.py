"""`trainer rl`'s two training callbacks (the held-out greedy pass@1 curve, and the time cap) and
the plot of its curves (`plot_curves`: OUT/curves.png).

Both are TrainerCallbacks that need the trainer itself (`callback.trainer`, set after it is built)
to reach the model being trained and its accelerator; `run` is the RLRun (trainer/rl.py).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from dsl import Verifier, load_tasks, run_episode
from server.backends import TransformersBackend

from .rollout import rollouts


def heldout_callback(run, chat, verifier: Verifier, curves: Path):
    from transformers import TrainerCallback
    tasks = load_tasks(run.heldout)[: run.heldout_n] if run.heldout_n and Path(run.heldout).is_file() else []

    class HeldoutPassAt1(TrainerCallback):
        """Greedy pass@1 on held-out tasks at the start, every `eval_every` steps and at the end."""
        trainer = None

        def __init__(self):
            self.points = json.loads(curves.read_text()) if curves.is_file() else []

        def measure(self, step: int, model, tok) -> None:
            if not tasks or any(p["step"] == step for p in self.points):
                return
            was_training = model.training
            model.eval()
            greedy = TransformersBackend.from_model(model, tok, chat, max_new_tokens=run.max_new_tokens,
                                                    grammar=run.grammar)
            if run.batch_rows:  # as RL plays them (within --context tokens), in lockstep
                trajs = rollouts(tasks, greedy, rows=run.batch_rows, verifier=verifier, max_turns=run.max_turns,
                                 context=run.context)
                turns = sum(len(t.turn_spans) for t in trajs)
            else:  # as the server and `trainer eval` play them
                trajs = [run_episode(t, greedy, verifier=verifier, max_turns=run.max_turns) for t in tasks]
                turns = sum(len(t.turns) for t in trajs)
            model.train(was_training)
            point = {"step": step, "pass@1": sum(t.solved for t in trajs) / len(trajs),
                     "invalid_rate": sum(t.invalid_turns for t in trajs) / max(turns, 1), "n": len(trajs)}
            self.points.append(point)
            curves.write_text(json.dumps(self.points, indent=1))
            if self.trainer is not None:
                self.trainer._metrics["train"]["heldout/pass@1"].append(point["pass@1"])
            print(f"\nheld-out pass@1 at step {step}: {point['pass@1']:.3f} ({len(trajs)} tasks)", file=sys.stderr)

        def _measure_now(self, state) -> None:
            if self.trainer.accelerator.is_main_process:
                self.measure(state.global_step, self.trainer.accelerator.unwrap_model(self.trainer.model),
                             self.trainer.processing_class)

        def on_train_begin(self, args, state, control, **kwargs):
            self._measure_now(state)

        def on_step_end(self, args, state, control, **kwargs):
            if run.eval_every and state.global_step % run.eval_every == 0:
                self._measure_now(state)

        def on_train_end(self, args, state, control, **kwargs):
            self._measure_now(state)
    return HeldoutPassAt1()


def time_cap(run):
    from transformers import TrainerCallback

    class TimeCap(TrainerCallback):
        """Stop once another step, as long as the longest so far, would end past --max-minutes of
        training: a lent GPU's call has a hard limit and the run must save before it, so a step that
        might cross the cap is not begun (the first step always runs). The longest, not the last:
        step times vary several-fold with the tasks drawn, and rl11's 23rd step took 75 s after a
        14 s one, ending 16 s before its call's limit. Every process takes the decision of the
        slowest, so that none waits in a collective the others have left."""
        trainer = None
        stopped = False

        def on_train_begin(self, args, state, control, **kwargs):
            self.t0 = self.last_end = time.time()
            self.longest = 0.0

        def on_step_end(self, args, state, control, **kwargs):
            if not run.max_minutes:
                return
            import torch
            now = time.time()
            self.longest, self.last_end = max(self.longest, now - self.last_end), now
            over = torch.tensor([float(now - self.t0 + self.longest > 60 * run.max_minutes)],
                                device=self.trainer.accelerator.device)
            if self.trainer.accelerator.reduce(over, "max").item() > 0:
                control.should_training_stop = self.stopped = True
    return TimeCap()


def plot_curves(log_history: list[dict], heldout: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    pts = [(h["step"], h["reward"]) for h in log_history if "reward" in h]
    a.plot([p[0] for p in pts], [p[1] for p in pts], marker=".")
    a.set(xlabel="step", ylabel="mean episode reward", title="reward")
    b.plot([p["step"] for p in heldout], [p["pass@1"] for p in heldout], marker="o")
    b.set(xlabel="step", ylabel="pass@1", title="held-out pass@1 (greedy)", ylim=(0, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
