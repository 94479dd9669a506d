"""Stage 3 — evaluation: exactly what Fix does, on a task set: the repair engine (`dsl.repair`) with
the model in its own process, as the language server and `coedit fix` run it.

    python -m trainer eval --tasks ../shared/bench/quixbugs.jsonl --json runs/eval-quixbugs.json
    python -m trainer eval --tasks runs/eval-set/eval_mbpp_test.jsonl --limit 100 --proposers search
    python -m trainer eval --model runs/sft-tiny/final --proposers episodes --all-episodes --k 4 --tasks T
    python -m trainer eval --model runs/direct-tiny/final --mode direct --tasks ../shared/bench/quixbugs.jsonl

Per task: one run of the engine with --runs test runs and --seconds of wall clock (Fix's defaults:
400 and 30), its --proposers (search, model = lines + episodes; default both), the shipped model
unless --model. Reported (`--json OUT` carries every number and per-task rows): `fixed` (share of
tasks with a plausible fix the audit passed), `fixed_by` (per proposer, who found it first),
`model_only` (tasks a model proposer fixed), test runs and seconds to a fix and seconds per task
(median and p90). The model's own pass@1 / pass@k / best-of-k (the unbiased estimator over its k
episodes) come from `--proposers episodes --all-episodes` (every episode played; the first greedy,
the rest sampled at --temperature; --restart fresh starts each from the task's code, best from the
furthest state an earlier one reached; --redraws N draws again a command that would revisit
code). Baselines in the same harness: `--baseline none` (the code as given) and `--mode direct`
(one whole program per sample). A task whose model process crashes counts as failed and is
reported; the run goes on. Output: a markdown table, `--json OUT`, `--plot OUT.png` (pass@k).
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from math import comb
from pathlib import Path

from dsl import RepairConfig, Task, TaskCheck, Verifier, load_tasks, repair
from server.backends import MIN_P, TOP_P

from .data import direct_messages
from .flags import parse_flags, run_stage


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c pass (Chen et al. 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


@dataclass
class EvalConfig:
    tasks: str = "runs/data/eval_mbpp_test.jsonl"
    model: str = ""  # checkpoint dir or .gguf; empty: the shipped default model
    mode: str = "coe"  # coe (the repair engine) | direct (whole programs: the Direct baseline)
    baseline: str = ""  # none: the code as given, no edit
    k: int = RepairConfig.episodes  # model episodes at most, as Fix (the model alone: every one played)
    temperature: float = 0.7  # for samples after the first (the first is greedy)
    top_p: float = TOP_P  # sampling's cut-offs (server/backends/sampling.py); 1 and 0: off
    min_p: float = MIN_P
    max_turns: int = 10
    greedy_turns: int = RepairConfig.greedy_turns  # the greedy episode's turns at most
    add_lines: int = RepairConfig.add_lines  # line proposals that add a line after the top N suspect lines
    top_lines: int = RepairConfig.top_lines  # lines the model rewrites (line proposals)
    line_samples: int = RepairConfig.line_samples  # rewrites per line
    free_samples: int = RepairConfig.free_samples  # lines rewritten / added where the model chooses, each
    line_batch: int = RepairConfig.line_batch  # line samples asked of the model at once (decoded side by side)
    line_states: int = RepairConfig.line_states  # chain states whose lines the model rewrites too
    chains_first_s: float = RepairConfig.chains_first_s  # seconds of edit chains before the model's first turn
    limit: int = 0  # first N tasks only (after --skip)
    skip: int = 0  # leave out the first N tasks: a second sample of a set, disjoint from the first
    seed: int = 0
    json: str = ""
    plot: str = ""
    threads: int = 0
    grammar: str = "code"  # code | syntax | off: what the model may write (server/backends/)
    redraws: int = 0  # draw again a command that would revisit code, up to N times (dsl/episode.py)
    restart: str = "best"  # best | fresh: where model episodes start (the furthest state so far, or the task's code)
    proposers: str = "search,model"  # the repair engine's proposers: search, model (= lines, episodes)
    runs: int = 400  # test runs per task (the engine's budget)
    seconds: float = 30.0  # wall clock per task
    all_episodes: bool = False  # play all k model episodes even after a fix (the model's pass@k)
    one_at_a_time: bool = False  # a GGUF's line proposals decoded one after another, not side by side


class ServedModel:
    """The evaluated model as the server runs it, in its own process (server/model_process.py).
    A process that crashes costs its task (counted as failed, reported) and is replaced before
    the next; counts survive the restart."""

    def __init__(self, cfg: EvalConfig):
        self.cfg, self.model = cfg, None
        self._tokens = self._overflows = 0  # of processes already replaced
        self.start()

    def start(self) -> None:
        from server.model_process import ModelProcess
        self.close()
        cfg = self.cfg
        self.model = ModelProcess(cfg.model, temperature=0.0, top_p=cfg.top_p, min_p=cfg.min_p, threads=cfg.threads,
                                  seed=cfg.seed, mode=cfg.mode, grammar=cfg.grammar,
                                  **({"parallel": False} if cfg.one_at_a_time else {}))

    def tokens(self) -> int:
        return self._tokens + (self.model.generated_tokens if self.model else 0)

    def overflows(self) -> int:
        return self._overflows + (self.model.overflows if self.model else 0)

    def close(self) -> None:
        if self.model is not None:
            self._tokens, self._overflows = self.tokens(), self.overflows()
            self.model.close()
        self.model = None


def repair_config(cfg: EvalConfig) -> RepairConfig:
    """The engine's settings from the flags (a ValueError names a bad one)."""
    names: list[str] = []
    for name in cfg.proposers.split(","):
        names += ["lines", "episodes"] if name == "model" else [name]
    rcfg = RepairConfig(runs=cfg.runs, seconds=cfg.seconds, proposers=tuple(dict.fromkeys(names)), episodes=cfg.k,
                        max_turns=cfg.max_turns, greedy_turns=cfg.greedy_turns, add_lines=cfg.add_lines,
                        top_lines=cfg.top_lines, line_samples=cfg.line_samples, line_states=cfg.line_states,
                        free_samples=cfg.free_samples, line_batch=cfg.line_batch, chains_first_s=cfg.chains_first_s,
                        temperature=cfg.temperature, redraws=cfg.redraws,
                        stop_at_fix=not cfg.all_episodes, restart=cfg.restart)
    rcfg.check()
    return rcfg


def run_engine(tasks: list[Task], cfg: EvalConfig, verifier: Verifier) -> tuple[list[dict], int]:
    """Per task, the repair engine exactly as Fix runs it (`dsl.repair`), with the model in its own
    process; and how many replies were not generated because the context was full."""
    from server.model_process import ModelCrashed
    rcfg = repair_config(cfg)
    served = ServedModel(cfg) if {"lines", "episodes"} & set(rcfg.proposers) else None
    out = []
    for n, task in enumerate(tasks, 1):
        check, before = TaskCheck(task, verifier), served.tokens() if served else 0
        try:
            res = repair(task, check, rcfg, model=served.model if served else None, run_tests=check.tests)
            out.append(result_row(task, res, (served.tokens() if served else 0) - before))
        except ModelCrashed as e:  # the task fails; the run goes on with a new process
            print(f"  task {task.id}: the {e}; counted as failed", file=sys.stderr, flush=True)
            failed = {"solved": False, "turns": 0, "invalid": 0, "tokens": 0, "tests_passed": 0, "solved_at": None}
            out.append({"id": task.id, "status": "crashed", "fixed": False, "fixed_by": "", "test_runs": 0,
                        "seconds": 0.0, "runs_by": {}, "fix": [], "rejected": [], "ranking": [],
                        "episodes": [dict(failed) for _ in range(cfg.k if "episodes" in rcfg.proposers else 0)],
                        "crashed": e.signal or str(e)})
            served.start()
        _progress(n, len(tasks), out)
    overflows = served.overflows() if served else 0
    if served:
        served.close()
    return out, overflows


def result_row(task: Task, res, tokens: int) -> dict:
    """One task's row of --json: the engine's outcome, and its model episodes as before."""
    eps = []
    for traj in res.episodes:
        solved_at = next((i for i, t in enumerate(traj.turns, 1) if t.solved), None)
        eps.append({"solved": traj.solved, "turns": len(traj.turns), "invalid": traj.invalid_turns,
                    "tokens": tokens // max(len(res.episodes), 1), "redrawn": traj.redrawn,
                    "commands": [t.text for t in traj.turns],
                    "tests_passed": traj.turns[-1].tests_passed if traj.turns else 0,
                    "solved_at": solved_at if traj.solved else None})
    fixed = res.status == "fixed"
    return {"id": task.id, "status": res.status, "fixed": fixed, "fixed_by": res.proposer,
            "test_runs": res.at.get("runs", res.runs) if fixed else res.runs,
            "seconds": res.at.get("seconds", res.seconds) if fixed else res.seconds,
            "runs_by": res.tried, "fix": res.commands, "rejected": res.rejected,
            "ranking": [n for n, _ in res.ranking[:5]], "episodes": eps}


def run_direct(tasks: list[Task], cfg: EvalConfig, verifier: Verifier) -> tuple[list[dict], int]:
    """The Direct baseline: k whole programs per task (the first greedy), each judged by the tests."""
    served = ServedModel(cfg)
    out = []
    for n, task in enumerate(tasks, 1):
        eps = []
        for i in range(cfg.k):
            before = served.tokens()
            program = served.model(direct_messages(task, task.code), temperature=0.0 if i == 0 else cfg.temperature)
            r = verifier.verify(program, task.tests, task.timeout_s)
            eps.append({"solved": r.passed, "turns": 1, "invalid": 0, "tokens": served.tokens() - before,
                        "tests_passed": r.tests_passed, "solved_at": 1 if r.passed else None})
        out.append({"id": task.id, "fixed": any(e["solved"] for e in eps), "episodes": eps})
        _progress(n, len(tasks), out)
    overflows = served.overflows()
    served.close()
    return out, overflows


def run_none(tasks: list[Task], verifier: Verifier) -> list[dict]:
    return [{"id": t.id, "episodes": [{"solved": verifier.verify(t.code, t.tests, t.timeout_s).passed, "turns": 0,
                                       "invalid": 0, "tokens": 0, "tests_passed": 0, "solved_at": None}]} for t in tasks]


def _progress(n: int, total: int, out: list[dict]) -> None:
    if n % 10 == 0 or n == total:
        solved = sum(r.get("fixed", any(e["solved"] for e in r["episodes"])) for r in out)
        print(f"  {n}/{total} tasks, {solved} solved", file=sys.stderr, flush=True)


def _pass(r: dict, k: int) -> float:
    """pass@k of one task's episodes; 0 for a task that played none (the search fixed it first)."""
    n = len(r["episodes"])
    return pass_at_k(n, sum(e["solved"] for e in r["episodes"]), min(k, n)) if n else 0.0


def _spread(values: list[float]) -> dict:
    if not values:
        return {"median": None, "p90": None}
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]}


def metrics(results: list[dict], k: int, seconds: float, overflows: int = 0) -> dict:
    eps = [e for r in results for e in r["episodes"]]
    n_tasks = len(results)
    turns = sum(e["turns"] for e in eps)
    m = {
        "n_tasks": n_tasks, "k": k,
        "pass@1": sum(_pass(r, 1) for r in results) / max(n_tasks, 1),
        "pass@k": sum(_pass(r, k) for r in results) / max(n_tasks, 1),
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
    if results and all("test_runs" in r for r in results):  # the repair engine's own numbers
        fixed = [r for r in results if r["fixed"]]
        m.update({"fixed": len(fixed) / n_tasks, "fixed_by": dict(Counter(r["fixed_by"] for r in fixed)),
                  "model_only": sum(r["fixed_by"].startswith("model") for r in fixed),
                  "test_runs": _spread([r["test_runs"] for r in fixed]),
                  "seconds_to_fix": _spread([r["seconds"] for r in fixed]),
                  "seconds_per_task": _spread([r["seconds"] for r in results]),
                  "rejected_by_audit": sum(bool(r["rejected"]) for r in results)})
    return m


def table(m: dict, label: str) -> str:
    if "fixed" in m:
        by = ", ".join(f"{k} {v}" for k, v in sorted(m["fixed_by"].items())) or "-"
        fmt = lambda d: "-" if d["median"] is None else f"{d['median']:g} / {d['p90']:g}"  # noqa: E731
        return ("| run | tasks | fixed | fixed by | test runs to fix (median / p90) | s to fix (median / p90) | "
                "s per task (median / p90) |\n|---|---|---|---|---|---|---|\n"
                f"| {label} | {m['n_tasks']} | {100 * m['fixed']:.1f}% | {by} | {fmt(m['test_runs'])} | "
                f"{fmt(m['seconds_to_fix'])} | {fmt(m['seconds_per_task'])} |")
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
    if cfg.baseline not in ("", "none"):
        raise ValueError(f"--baseline must be none, not {cfg.baseline!r} (the edit search is --proposers search)")
    if cfg.mode not in ("coe", "direct"):
        raise ValueError(f"--mode must be coe or direct, not {cfg.mode!r}")
    repair_config(cfg)  # unknown proposers or budgets: an error before anything loads
    tasks = load_tasks(cfg.tasks)[cfg.skip:][: cfg.limit or None]
    if not tasks:
        raise ValueError(f"{cfg.tasks}: no tasks" + (f" left after --skip {cfg.skip}" if cfg.skip else ""))
    verifier = Verifier()
    t0, overflows = time.time(), 0
    if cfg.baseline == "none":
        results, label = run_none(tasks, verifier), "no edit"
    else:
        if not cfg.model and (cfg.mode == "direct" or cfg.proposers != "search"):
            from server.defaults import default_model
            cfg.model = str(default_model())
        if cfg.mode == "direct":
            (results, overflows), label = run_direct(tasks, cfg, verifier), f"direct {Path(cfg.model).name}"
        else:
            (results, overflows), label = run_engine(tasks, cfg, verifier), " ".join(
                [cfg.proposers, Path(cfg.model).name if cfg.proposers != "search" else ""]).strip()
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
    return run_stage(lambda: evaluate(cfg), cfg.top_p, cfg.min_p)
