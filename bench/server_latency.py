"""Language-server latency, end-to-end fix time, and backend decode speed.

    python bench/server_latency.py --model models/default/model-q8_0.gguf [--hf runs/sft-tiny/final]

1. codeAction latency (p50/p99 over --n requests) with the server idle, and while a fix runs on
   another document (a scripted policy keeps the fix busy): the action must never wait on a model.
2. End-to-end `coedit fix` time on MBPP-size functions with --model (median over --tasks tasks of
   the evaluation set, each in a small workspace of its own: file + pytest test file, the cursor
   on the function the tests call, as a user would put it), and which tasks it fixed. The server
   edits only that function: a bug in a module-level line or another function is out of its reach,
   where `trainer eval` edits the whole file.
3. Decode tokens/s of llama.cpp (--model, a GGUF) and transformers (--hf, the same model's
   checkpoint), greedy, on the same prompt; the last line is `decode speedup: <x>x`.
Everything runs on this machine in one go; say which machine when quoting the numbers.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lsprotocol import types  # noqa: E402
from pytest_lsp import LanguageClient, client_capabilities  # noqa: E402

from dsl import Episode, load_tasks, new_conversation  # noqa: E402

BUGGY = "def add(a, b):\n    return a - b\n"
TEST = "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def code_action_latency(n: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "calc.py").write_text(BUGGY)
        (root / "busy.py").write_text(BUGGY.replace("add", "busy"))
        (root / "test_calc.py").write_text(TEST + TEST.replace("add", "busy").replace("calc", "busy"))
        (root / "slow.txt").write_text("ADDL 2 >>>    pass\n" * 40)
        client = LanguageClient()
        # a bare client: accept what the server sends during a fix
        client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)(lambda params: None)
        for method in (types.PROGRESS, types.WINDOW_LOG_MESSAGE, types.WINDOW_SHOW_MESSAGE):
            client.feature(method)(lambda params: None)
        await client.start_io(sys.executable, "-m", "server")
        await client.initialize_session(types.InitializeParams(
            capabilities=client_capabilities("visual_studio_code"), root_uri=root.as_uri(),
            initialization_options={"model": f"scripted:{root / 'slow.txt'}", "k": 4, "maxTurns": 40}))
        uris = {}
        for name in ("calc.py", "busy.py"):
            uris[name] = (root / name).as_uri()
            client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
                uri=uris[name], language_id="python", version=1, text=(root / name).read_text())))

        async def one() -> float:
            pos = types.Position(line=1, character=4)
            t0 = time.perf_counter()
            await client.text_document_code_action_async(types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uris["calc.py"]), range=types.Range(start=pos, end=pos),
                context=types.CodeActionContext(diagnostics=[])))
            return (time.perf_counter() - t0) * 1000
        idle = [await one() for _ in range(n)]
        await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command="coedit.fix", arguments=[uris["busy.py"], 1]))
        busy = [await one() for _ in range(n)]
        await client.workspace_execute_command_async(types.ExecuteCommandParams(command="coedit.cancel", arguments=[]))
        await client.shutdown_session()
        return idle, busy


def fix_times(model: str, tasks_file: str, n: int) -> tuple[list[float], list[str]]:
    from server.fix import ModelCache, run_fix
    from server.options import Options
    models, times, fixed = ModelCache(), [], []
    for task in load_tasks(tasks_file)[:n]:
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            (root / "solution.py").write_text(task.code + "\n")
            (root / "test_solution.py").write_text("from solution import *\n\n\ndef test_task():\n"
                                                   + "".join(f"    {line}\n" for line in task.tests.splitlines()))
            rows = task.code.splitlines()
            defs = [i for i, row in enumerate(rows) if row.lstrip().startswith("def ")]
            line = next((i for i in defs if rows[i].lstrip().startswith(f"def {task.entry_point}(")), defs[0] if defs else 0)
            t0 = time.perf_counter()
            out = run_fix(root / "solution.py", task.code + "\n", line, root, Options(model=model, k=1), models)
            times.append(time.perf_counter() - t0)
            if out.status == "fixed":
                fixed.append(task.id)
    return times, fixed


def decode_speed(model: str, hf: str) -> tuple[float, float]:
    from server.backends import LlamaCppBackend, TransformersBackend
    task = load_tasks(str(Path(__file__).resolve().parents[1] / "runs" / "data" / "eval_mbpp_test.jsonl"))[0] \
        if (Path(__file__).resolve().parents[1] / "runs" / "data" / "eval_mbpp_test.jsonl").exists() else None
    from dsl import Task
    task = task or Task("t", BUGGY, "assert add(1, 2) == 3")
    msgs = new_conversation(task, Episode(task).reset())
    speeds = []
    for backend in (LlamaCppBackend(model, grammar=False, max_new_tokens=64),
                    TransformersBackend(hf, grammar=False, max_new_tokens=64)):
        backend(msgs)  # warm up
        t0, before = time.perf_counter(), backend.generated_tokens
        for _ in range(3):
            backend(msgs)
        speeds.append((backend.generated_tokens - before) / (time.perf_counter() - t0))
    return speeds[0], speeds[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a GGUF model")
    ap.add_argument("--hf", default="", help="the same model as a checkpoint directory (for decode speed)")
    ap.add_argument("--tasks", default="runs/data/eval_mbpp_test.jsonl")
    ap.add_argument("--n", type=int, default=50, help="codeAction requests per condition")
    ap.add_argument("--fixes", type=int, default=20, help="tasks for the end-to-end fix time")
    args = ap.parse_args()
    idle, busy = asyncio.run(code_action_latency(args.n))
    print("| codeAction | p50 ms | p99 ms |\n|---|---|---|")
    print(f"| idle | {pct(idle, 0.5):.1f} | {pct(idle, 0.99):.1f} |")
    print(f"| while a fix runs | {pct(busy, 0.5):.1f} | {pct(busy, 0.99):.1f} |")
    if args.fixes > 0 and not Path(args.tasks).exists():
        print(f"\nend-to-end fix skipped: {args.tasks} does not exist (python -m trainer data --n 1 --out "
              "runs/eval-set writes the evaluation set; then --tasks runs/eval-set/eval_mbpp_test.jsonl)", file=sys.stderr)
    elif args.fixes > 0:
        times, fixed = fix_times(args.model, args.tasks, args.fixes)
        print(f"\nend-to-end fix (k=1): median {statistics.median(times):.2f} s over {len(times)} tasks "
              f"({len(fixed)} fixed: {', '.join(fixed) or 'none'})")
    if args.hf:
        ll, hf = decode_speed(args.model, args.hf)
        print(f"\n| backend | decode tok/s |\n|---|---|\n| llama.cpp | {ll:.0f} |\n| transformers | {hf:.0f} |")
        print(f"decode speedup: {ll / hf:.1f}x")


if __name__ == "__main__":
    main()
