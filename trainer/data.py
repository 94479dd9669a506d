"""Stage 1 — data: SFT demonstrations, Direct-answer pairs and evaluation sets, from MBPP.

    python -m trainer data                      # the paper's size (35,223 demonstrations)
    python -m trainer data --n 2000 --out runs/data-small

Demonstrations come from MBPP `train` + `validation` only: a correct solution is broken with 1-5
random edits (`trainer/corrupt.py`), kept if its tests then fail, and the inverse edits are played
back through a real `dsl` episode (`run_episode` with a scripted policy), so every tool state in a
demonstration is the verifier's real output and every demonstration ends solved, with `EXIT`.
The same corruptions give the Direct baseline's pairs (task + buggy code -> fixed code).
`--pytest-share F` renders that share of demonstrations as the language server shows a workspace's
task (`workspace_form`: no description, the asserts inside pytest test functions, so the tool
states carry the verifier's test-function feedback); which ones is seeded apart from the
corruptions, so the same corruptions come out whatever the share.
Evaluation: MBPP `test` with one seeded 1-5-edit corruption per problem, in the dsl task format
(`eval_mbpp_test.jsonl`, and the same tasks in workspace form, `eval_mbpp_test_pytest.jsonl`);
QuixBugs (`../shared/bench/quixbugs.jsonl`) is used as it is. Neither is ever trained on.

Deterministic: the work is cut into (task, round) units, each with its own seed, processed in
order whatever the number of workers; duplicates (same task, same buggy code) are dropped.
"""
from __future__ import annotations

import ast
import hashlib
import json
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from multiprocessing import Pool
from pathlib import Path

from dsl import Task, Verifier, load_mbpp, run_episode, scripted_policy, write_tasks

from .corrupt import corrupt, repair_commands
from .flags import parse_flags

PAPER_SIZE = 35223
DIRECT_SYSTEM_PROMPT = ("You repair Python code. You are given a task, its tests and a buggy program. "
                        "Answer with the whole corrected program only.")


@dataclass
class DataConfig:
    out: str = "runs/data"  # output directory
    n: int = PAPER_SIZE  # SFT demonstrations to write (the paper used 35,223)
    seed: int = 0  # fixes corruptions, order, and the evaluation set
    max_edits: int = 5  # corruptions per program: uniform in 1..max_edits
    eval_seed: int = 1234  # the MBPP-test evaluation corruptions (one per problem)
    workers: int = 2  # processes, each with its own warm sandbox
    eval_set: bool = True  # also write the MBPP-test evaluation set
    pytest_share: float = 0.0  # share of demonstrations in workspace form (as the language server shows tasks)


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big")


def line_pool(tasks: list[Task]) -> list[str]:
    """Distinct non-trivial lines of the given solutions: what insert/replace corruptions draw on."""
    seen: dict[str, None] = {}
    for t in tasks:
        for line in t.code.split("\n"):
            s = line.strip()
            if len(s) > 3 and not s.startswith(("def ", "class ", "#", "import ", "from ")):
                seen.setdefault(s, None)
    return list(seen)


def direct_messages(task: Task, buggy: str, fixed: str | None = None) -> list[dict[str, str]]:
    """The Direct baseline's conversation: task + tests + buggy code, answered by the fixed code."""
    parts = [f"Task: {task.description.strip()}"] if task.description else []
    parts += [f"Tests:\n{task.tests.strip()}", f"Code:\n{buggy}"]
    msgs = [{"role": "system", "content": DIRECT_SYSTEM_PROMPT}, {"role": "user", "content": "\n\n".join(parts)}]
    return msgs + ([{"role": "assistant", "content": fixed}] if fixed is not None else [])


def workspace_form(task: Task, rng: random.Random) -> Task:
    """`task` as the language server shows a workspace's: no description (the server has none), and
    the tests as pytest functions, which is what discovery shows the model. One function holding
    every statement, or one function per assert, at random."""
    try:
        body = ast.parse(task.tests).body
    except SyntaxError:
        raise ValueError(f"{task.id}: the tests do not parse") from None
    rows = task.tests.split("\n")
    stmts = ["\n".join(rows[b.lineno - 1: b.end_lineno]) for b in body]
    name = f"test_{task.entry_point or 'task'}"

    def fn(fname: str, parts: list[str]) -> str:
        return f"def {fname}():\n" + "\n".join("    " + line for p in parts for line in p.split("\n"))
    if len(body) > 1 and all(isinstance(b, ast.Assert) for b in body) and rng.random() < 0.5:
        tests = "\n\n\n".join(fn(f"{name}_{i}", [st]) for i, st in enumerate(stmts, 1))
    else:
        tests = fn(name, stmts)
    return Task(task.id, task.code, tests + "\n", task.entry_point, None, task.timeout_s, task.split)


_worker_state: dict = {}


def _init_worker(pool: list[str], max_edits: int, pytest_share: float = 0.0) -> None:
    _worker_state.update(verifier=Verifier(), pool=pool, max_edits=max_edits, pytest_share=pytest_share)


def make_example(unit: tuple[Task, int, int]) -> dict | None:
    """One demonstration for (task, round, seed), or None when no failing corruption was found."""
    task, rnd, seed = unit
    v, pool = _worker_state["verifier"], _worker_state["pool"]
    rng = random.Random(_seed(seed, task.id, rnd))
    for _ in range(5):  # a few tries: some corruptions leave the tests passing
        n_edits = rng.randint(1, _worker_state["max_edits"])
        broken = corrupt(task.code, rng, n_edits, pool)
        if broken is None:
            continue
        buggy, corruptions = broken
        if v.verify(buggy, task.tests, task.timeout_s).passed:
            continue
        demo_task = Task(task.id, buggy, task.tests, task.entry_point, task.description, task.timeout_s, task.split)
        form = random.Random(_seed(seed, "form", task.id, rnd))  # apart from `rng`: same corruptions at any share
        if form.random() < _worker_state["pytest_share"]:
            demo_task = workspace_form(demo_task, form)
        traj = run_episode(demo_task, scripted_policy(repair_commands(corruptions)), verifier=v,
                           max_turns=n_edits + 1)
        if not (traj.solved and traj.exited and traj.invalid_turns == 0):
            continue  # cannot happen for exact inverses; checked, not assumed
        return {"task_id": task.id, "n_edits": n_edits, "operators": [c.operator for c in corruptions],
                "buggy": buggy, "fixed": task.code, "messages": traj.messages,
                "form": "mbpp" if demo_task.tests == task.tests else "pytest", "task": demo_task}
    return None


def _units(tasks: list[Task], seed: int):
    rnd = 0
    while True:
        order = sorted(tasks, key=lambda t: _seed(seed, "order", rnd, t.id))
        for t in order:
            yield t, rnd, seed
        rnd += 1


def build(cfg: DataConfig) -> dict:
    """Write sft_coe.jsonl, sft_direct.jsonl, eval_mbpp_test.jsonl and stats.json under cfg.out."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    train = load_mbpp(["train", "validation"])
    pool = line_pool(train)
    t0, kept, seen = time.time(), 0, set()
    ops, edits = Counter(), Counter()
    n_chars = 0
    if not 0.0 <= cfg.pytest_share <= 1.0:
        raise SystemExit(f"--pytest-share must be between 0 and 1, not {cfg.pytest_share}")
    forms = Counter()
    with Pool(cfg.workers, _init_worker, (pool, cfg.max_edits, cfg.pytest_share)) as workers, \
            (out / "sft_coe.jsonl").open("w") as coe, (out / "sft_direct.jsonl").open("w") as direct:
        for ex in workers.imap(make_example, _units(train, cfg.seed), chunksize=8):
            if ex is None or (ex["task_id"], ex["buggy"]) in seen:
                continue
            seen.add((ex["task_id"], ex["buggy"]))
            ex_id = f"{ex['task_id']}#{kept}"
            coe.write(json.dumps({"id": ex_id, **{k: ex[k] for k in ("task_id", "n_edits", "operators", "buggy", "form",
                                                                      "messages")}}) + "\n")
            direct.write(json.dumps({"id": ex_id, "task_id": ex["task_id"],  # the task as the demo showed it
                                     "messages": direct_messages(ex["task"], ex["buggy"], ex["fixed"])}) + "\n")
            forms[ex["form"]] += 1
            ops.update(ex["operators"])
            edits[ex["n_edits"]] += 1
            n_chars += sum(len(m["content"]) for m in ex["messages"])
            kept += 1
            if kept % 500 == 0 or kept == cfg.n:
                rate = kept / (time.time() - t0)
                print(f"  {kept}/{cfg.n} demonstrations ({rate:.0f}/s)", file=sys.stderr, flush=True)
            if kept >= cfg.n:
                break
    n_eval = build_eval(out / "eval_mbpp_test.jsonl", pool, cfg) if cfg.eval_set else 0
    stats = {"config": asdict(cfg), "demonstrations": kept, "train_tasks": len(train),
             "operators": dict(ops), "forms": dict(forms), "n_edits": {str(k): v for k, v in sorted(edits.items())},
             "chars": n_chars, "eval_tasks": n_eval, "seconds": round(time.time() - t0, 1)}
    (out / "stats.json").write_text(json.dumps(stats, indent=2))
    return stats


def build_eval(path: Path, pool: list[str], cfg: DataConfig) -> int:
    """MBPP test problems, each broken once with a fixed seed so that its tests fail."""
    v = Verifier()
    tasks = []
    for task in load_mbpp(["test"]):
        rng = random.Random(_seed(cfg.eval_seed, task.id))
        for _ in range(20):
            broken = corrupt(task.code, rng, rng.randint(1, cfg.max_edits), pool)
            if broken and not v.verify(broken[0], task.tests, task.timeout_s).passed:
                tasks.append(Task(task.id, broken[0], task.tests, task.entry_point, task.description,
                                  task.timeout_s, task.split))
                break
    v.close()
    rng = random.Random(cfg.eval_seed)
    write_tasks(path.with_name(path.stem + "_pytest.jsonl"), [workspace_form(t, rng) for t in tasks])
    return write_tasks(path, tasks)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_flags(DataConfig, argv, "python -m trainer data", __doc__.split("\n\n")[0])
    stats = build(cfg)
    print(json.dumps({k: stats[k] for k in ("demonstrations", "eval_tasks", "chars", "seconds")}))
    return 0
