"""Stage 3 — evaluation: a model against tasks, through the backends the server serves with.

    python -m trainer eval --model runs/sft-tiny/final --tasks runs/data/eval_mbpp_test.jsonl --k 4
    python -m trainer eval --model runs/direct-tiny/final --mode direct --tasks ../shared/bench/quixbugs.jsonl
    python -m trainer eval --baseline enumerative --tasks ../shared/bench/quixbugs.jsonl --budget 100

Per task, k episodes (`dsl.run_episode`; the first greedy, the rest sampled at --temperature;
with --redraws N, a command that would revisit code is drawn again at --temperature, as the server's
`redraws` setting does; with --restart best, episodes after the first start from the furthest state
an earlier one reached, dsl/restart.py).
Reported: pass@1 and pass@k (the unbiased estimator over the n=k samples), verifier best-of-k
(the user's view: the tests pick a passing episode when there is one; with the same tests picking
and judging it equals pass@k), mean turns, invalid-command rate, generated tokens per episode,
episodes/s. Baselines in the same harness: `none` (the code as given), `direct` models (one
whole program per sample), and `enumerative` (single-line mutations of the buggy code, tried in a
fixed order until one passes or --budget test runs are spent); `--mode ranked` is that search in
the order a model prefers (trainer/search.py). Output: a markdown table on stdout,
`--json OUT` (metrics and per-task results) and `--plot OUT.png` (pass@k vs k, solved vs turn).
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from math import comb
from pathlib import Path

from dsl import RESTARTS, Task, Verifier, load_tasks, restart_task, run_episode
from server.sampling import MIN_P, TOP_P, checked_cutoffs

from .data import direct_messages
from .flags import parse_flags
from .search import run_search


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c pass (Chen et al. 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


@dataclass
class EvalConfig:
    tasks: str = "runs/data/eval_mbpp_test.jsonl"
    model: str = ""  # checkpoint dir or .gguf; empty: the shipped default model
    mode: str = "coe"  # coe | direct | ranked (the model orders the enumerative search: trainer/search.py)
    baseline: str = ""  # none | enumerative (no model)
    k: int = 1
    temperature: float = 0.7  # for samples after the first (the first is greedy)
    top_p: float = TOP_P  # sampling's cut-offs (server/sampling.py); 1 and 0: off
    min_p: float = MIN_P
    max_turns: int = 10
    budget: int = 100  # enumerative and ranked: test runs per task
    limit: int = 0  # first N tasks only (after --skip)
    skip: int = 0  # leave out the first N tasks: a second sample of a set, disjoint from the first
    seed: int = 0
    json: str = ""
    plot: str = ""
    threads: int = 0
    grammar: str = "code"  # code | syntax | off: what the model may write (server/backends.py)
    redraws: int = 0  # draw again a command that would revisit code, up to N times (dsl/episode.py)
    restart: str = "fresh"  # fresh | best: where episodes after the first start (dsl/restart.py)


class ServedModel:
    """The evaluated model as the server runs it, in its own processes (server/model_process.py):
    a greedy one, and a sampling one when episodes sample. A process that crashes costs its task
    (counted as failed, reported) and is replaced before the next; counts survive the restart."""

    def __init__(self, cfg: EvalConfig, sampling: bool):
        self.cfg, self.sampling = cfg, sampling
        self.greedy = self.sampler = None
        self._tokens = self._overflows = 0  # of processes already replaced
        self.start()

    def start(self) -> None:
        from server.model_process import ModelProcess
        self.close()
        cfg = self.cfg
        same = dict(threads=cfg.threads, seed=cfg.seed, mode=cfg.mode, grammar=cfg.grammar)
        self.greedy = ModelProcess(cfg.model, temperature=0.0, **same)
        self.sampler = (ModelProcess(cfg.model, temperature=cfg.temperature, top_p=cfg.top_p, min_p=cfg.min_p, **same)
                        if self.sampling else None)

    def _running(self) -> list:
        return [p for p in (self.greedy, self.sampler) if p is not None]

    def tokens(self) -> int:
        return self._tokens + sum(p.generated_tokens for p in self._running())

    def overflows(self) -> int:
        return self._overflows + sum(p.overflows for p in self._running())

    def close(self) -> None:
        for p in self._running():
            self._tokens, self._overflows = self._tokens + p.generated_tokens, self._overflows + p.overflows
            p.close()
        self.greedy = self.sampler = None


def run_coe(tasks: list[Task], cfg: EvalConfig, verifier: Verifier) -> tuple[list[dict], int]:
    """Per-task results, and how many replies were not generated because the context was full."""
    from server.model_process import ModelCrashed
    redraws = cfg.redraws if cfg.temperature > 0 and cfg.mode == "coe" else 0
    served = ServedModel(cfg, sampling=cfg.k > 1 or bool(redraws))
    out = []
    for n, task in enumerate(tasks, 1):
        eps: list[dict] = []
        try:
            eps = run_task(task, cfg, verifier, served, redraws)
            out.append({"id": task.id, "episodes": eps})
        except ModelCrashed as e:  # the task fails; the run goes on with a new process
            print(f"  task {task.id}: the {e}; counted as failed", file=sys.stderr, flush=True)
            failed = {"solved": False, "turns": 0, "invalid": 0, "tokens": 0, "tests_passed": 0, "solved_at": None}
            eps += [dict(failed) for _ in range(cfg.k - len(eps))]  # k samples, as every task has
            out.append({"id": task.id, "episodes": eps, "crashed": e.signal or str(e)})
            served.start()
        _progress(n, len(tasks), out)
    overflows = served.overflows()
    served.close()
    return out, overflows


def run_task(task: Task, cfg: EvalConfig, verifier: Verifier, served: ServedModel, redraws: int) -> list[dict]:
    """The k episodes of one task (the first greedy), as result rows."""
    eps, trajs = [], []
    for i in range(cfg.k):
        backend = served.greedy if i == 0 else served.sampler
        before = served.tokens()
        if cfg.mode == "direct":
            program = backend(direct_messages(task, task.code))
            r = verifier.verify(program, task.tests, task.timeout_s)
            eps.append({"solved": r.passed, "turns": 1, "invalid": 0, "tokens": served.tokens() - before,
                        "tests_passed": r.tests_passed, "solved_at": 1 if r.passed else None})
            continue
        start = restart_task(task, trajs) if cfg.restart == "best" else task
        traj = run_episode(start, backend, verifier=verifier, max_turns=cfg.max_turns, redraws=redraws,
                           redraw=served.sampler)
        trajs.append(traj)
        solved_at = next((t_i for t_i, t in enumerate(traj.turns, 1) if t.solved), None)
        eps.append({"solved": traj.solved, "turns": len(traj.turns), "invalid": traj.invalid_turns,
                    "tokens": served.tokens() - before, "redrawn": traj.redrawn,
                    "commands": [t.text for t in traj.turns],
                    "tests_passed": traj.turns[-1].tests_passed if traj.turns else 0,
                    "solved_at": solved_at if traj.solved else None, "restarted": start is not task})
    return eps


def run_none(tasks: list[Task], verifier: Verifier) -> list[dict]:
    return [{"id": t.id, "episodes": [{"solved": verifier.verify(t.code, t.tests, t.timeout_s).passed, "turns": 0,
                                       "invalid": 0, "tokens": 0, "tests_passed": 0, "solved_at": None}]} for t in tasks]


def _progress(n: int, total: int, out: list[dict]) -> None:
    if n % 10 == 0 or n == total:
        solved = sum(any(e["solved"] for e in r["episodes"]) for r in out)
        print(f"  {n}/{total} tasks, {solved} solved", file=sys.stderr, flush=True)


def metrics(results: list[dict], k: int, seconds: float, overflows: int = 0) -> dict:
    eps = [e for r in results for e in r["episodes"]]
    n_tasks = len(results)
    turns = sum(e["turns"] for e in eps)
    return {
        "n_tasks": n_tasks, "k": k,
        "pass@1": sum(pass_at_k(len(r["episodes"]), sum(e["solved"] for e in r["episodes"]), 1) for r in results) / max(n_tasks, 1),
        "pass@k": sum(pass_at_k(len(r["episodes"]), sum(e["solved"] for e in r["episodes"]), min(k, len(r["episodes"])))
                      for r in results) / max(n_tasks, 1),
        "best_of_k": sum(any(e["solved"] for e in r["episodes"]) for r in results) / max(n_tasks, 1),
        "mean_turns": turns / max(len(eps), 1),
        "invalid_rate": sum(e["invalid"] for e in eps) / max(turns, 1),
        "tokens_per_episode": sum(e["tokens"] for e in eps) / max(len(eps), 1),
        "redraws_per_episode": sum(e.get("redrawn", 0) for e in eps) / max(len(eps), 1),
        "episodes_per_s": len(eps) / max(seconds, 1e-9),
        "context_overflows": overflows,  # episodes ended because the conversation outgrew the context
        "crashed_tasks": sum("crashed" in r for r in results),  # the model's process died: counted as failed
        "seconds": round(seconds, 1),
    }


def table(m: dict, label: str) -> str:
    return ("| run | tasks | k | pass@1 | pass@k | best-of-k | mean turns | invalid | tokens/ep | ep/s |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n"
            f"| {label} | {m['n_tasks']} | {m['k']} | {100 * m['pass@1']:.1f}% | {100 * m['pass@k']:.1f}% | "
            f"{100 * m['best_of_k']:.1f}% | {m['mean_turns']:.2f} | {100 * m['invalid_rate']:.1f}% | "
            f"{m['tokens_per_episode']:.0f} | {m['episodes_per_s']:.2f} |")


def plot(results: list[dict], k: int, path: str, label: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    ks = list(range(1, k + 1))
    a.plot(ks, [100 * sum(pass_at_k(len(r["episodes"]), sum(e["solved"] for e in r["episodes"]), j) for r in results)
                / len(results) for j in ks], marker="o")
    a.set(xlabel="k", ylabel="pass@k (%)", title=label)
    turns = [e["solved_at"] for r in results for e in r["episodes"][:1] if e["solved_at"]]
    top = max(turns, default=1)
    b.plot(range(1, top + 1), [100 * sum(t <= j for t in turns) / len(results) for j in range(1, top + 1)], marker="o")
    b.set(xlabel="turn", ylabel="solved by turn (%), first episode", title="solved vs turn")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def evaluate(cfg: EvalConfig) -> dict:
    if cfg.skip < 0 or cfg.limit < 0 or cfg.redraws < 0:
        raise ValueError("--skip, --limit and --redraws take a number, 0 or more")
    if cfg.baseline not in ("", "none", "enumerative"):
        raise ValueError(f"--baseline must be none or enumerative, not {cfg.baseline!r}")
    if cfg.mode not in ("coe", "direct", "ranked"):
        raise ValueError(f"--mode must be coe, direct or ranked, not {cfg.mode!r}")
    if cfg.restart not in RESTARTS:
        raise ValueError(f"--restart must be {' or '.join(RESTARTS)}, not {cfg.restart!r}")
    if cfg.restart != "fresh" and (cfg.mode != "coe" or cfg.baseline):
        raise ValueError("--restart applies to CoE episodes (--mode coe) only")
    if (cfg.mode == "ranked" or cfg.baseline) and cfg.k != 1:
        raise ValueError("a search (--mode ranked, --baseline) is one deterministic run per task: leave --k at 1")
    tasks = load_tasks(cfg.tasks)[cfg.skip:][: cfg.limit or None]
    if not tasks:
        raise ValueError(f"{cfg.tasks}: no tasks" + (f" left after --skip {cfg.skip}" if cfg.skip else ""))
    verifier = Verifier()
    t0, overflows = time.time(), 0
    if cfg.baseline == "none":
        results, label = run_none(tasks, verifier), "no edit"
    elif cfg.baseline == "enumerative":
        results, label = run_search(tasks, verifier, cfg.budget, _progress), f"enumerative ({cfg.budget} runs)"
    else:
        if not cfg.model:
            from server.defaults import default_model
            cfg.model = str(default_model())
        if cfg.mode == "ranked":
            from server.model_process import ModelProcess
            model = ModelProcess(cfg.model, threads=cfg.threads, seed=cfg.seed)
            try:
                results = run_search(tasks, verifier, cfg.budget, _progress, model=model)
            finally:
                model.close()
            overflows, label = model.overflows, f"ranked {Path(cfg.model).name} ({cfg.budget} runs)"
        else:
            (results, overflows), label = run_coe(tasks, cfg, verifier), f"{cfg.mode} {Path(cfg.model).name}"
    m = metrics(results, cfg.k, time.time() - t0, overflows)
    verifier.close()
    print(table(m, label))
    if m["crashed_tasks"]:
        print(f"{m['crashed_tasks']} task(s) crashed the model's process and count as failed "
              f"(the `crashed` rows of --json)", file=sys.stderr)
    if cfg.json:
        Path(cfg.json).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.json).write_text(json.dumps({**m, "label": label, "config": vars(cfg), "tasks": results}, indent=1))
    if cfg.plot:
        plot(results, cfg.k, cfg.plot, label)
    return m


def main(argv: list[str] | None = None) -> int:
    cfg = parse_flags(EvalConfig, argv, "python -m trainer eval", __doc__.split("\n\n")[0])
    from server.backends import ModelError
    try:
        checked_cutoffs(cfg.top_p, cfg.min_p)  # before minutes of loading, not after
        evaluate(cfg)
    except (ModelError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
