"""The model runtime, measured: decode speed with llama.cpp's extra buffer types on and off, and what
running the model in its own process costs a turn.

    python bench/model_runtime.py [--model models/default/coedit.gguf] [--tokens 96] [--reps 3] [--turns 20]

1. Decode tokens/s of the model as served (a LoRA adapter merged into its base GGUF, as
   server/backends/lora_merge.py does), greedy from a fixed prompt, each
   load in a fresh process, `--reps` times each, alternating: `use_extra_bufts` on (llama.cpp's
   default, which crashed LoRA models on AMX CPUs) against off (what coedit loads with,
   server/backends/llama_runtime.py). Ratio = off / on.
2. A turn's pipe cost: the same conversations (the states of real episodes on MBPP-test
   corruptions) answered by the model in this process (`LlamaCppBackend`) and through its worker
   (`ModelProcess`), and the bare round trip (a scripted policy in a worker: JSON over the pipe,
   no model). Share = round trip / in-process turn.
Prints two markdown tables.
"""
from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsl import Episode, Task, load_mbpp, new_conversation  # noqa: E402
from server.defaults import DEFAULT_MODEL  # noqa: E402

DECODE = """
import sys, time
import llama_cpp.llama_cpp as lib
from llama_cpp import Llama
from server.backends import gguf_meta, lora_base
from server.backends.llama_runtime import plain_cpu_buffers
from server.backends.lora_merge import merged_gguf
from pathlib import Path
path = Path(sys.argv[1]); n = int(sys.argv[2]); plain = sys.argv[3] == "off"
meta = gguf_meta(path)
# as served: an adapter merged into its base (server/backends/lora_merge.py)
model, lora = (merged_gguf(lora_base(meta["lora_base"], path), path), None) if meta.get("lora_base") else (path, None)
def load():
    return Llama(model_path=str(model), lora_path=lora, n_ctx=1024, verbose=False)
if plain:
    with plain_cpu_buffers():
        llm = load()
else:
    llm = load()
assert llm.model_params.use_extra_bufts == (not plain)
ids = llm.tokenize(b"def total(prices):\\n    t = 0\\n    for p in prices:\\n        t += p\\n    return t\\n" * 4)
made, t0 = 0, time.perf_counter()
for tok in llm.generate(ids, temp=0.0, reset=True):
    made += 1
    if made >= n:
        break
print(made / (time.perf_counter() - t0))
"""


def decode_rate(model: Path, tokens: int, mode: str) -> float | str:
    """Tokens/s, or how the run died: with extra buffer types on, the merged model itself crashes
    on AMX machines (SIGSEGV, seen 2026-12-07), which is the finding, not a reason to stop."""
    res = subprocess.run([sys.executable, "-c", DECODE, str(model), str(tokens), mode], capture_output=True,
                         text=True, timeout=600)
    if res.returncode < 0:
        return f"crashed ({signal.Signals(-res.returncode).name})"
    if res.returncode != 0:
        raise SystemExit(f"decode run ({mode}) failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return float(res.stdout.strip().splitlines()[-1])


def conversations(n: int) -> list[list[dict[str, str]]]:
    """First tool states of MBPP-test tasks with one operator flipped (a real episode's first turn)."""
    out = []
    for task in load_mbpp(["test"]):
        for old, new in ((" + ", " - "), (" < ", " <= "), (" == ", " != ")):
            if old in task.code:
                broken = Task(task.id, task.code.replace(old, new, 1), task.tests, description=task.description)
                out.append(new_conversation(broken, Episode(broken).reset()))
                break
        if len(out) == n:
            return out
    return out


def timed(policy, convs) -> list[float]:
    out = []
    for msgs in convs:
        t0 = time.perf_counter()
        policy(msgs)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--tokens", type=int, default=96, help="tokens decoded per run")
    ap.add_argument("--reps", type=int, default=3, help="runs per setting")
    ap.add_argument("--turns", type=int, default=20, help="conversations answered per way")
    args = ap.parse_args()
    model = Path(args.model)

    rates: dict[str, list] = {"on": [], "off": []}
    for _ in range(args.reps):
        for mode in ("on", "off"):
            rates[mode].append(decode_rate(model, args.tokens, mode))
    crashes = {mode: next((r for r in rs if isinstance(r, str)), None) for mode, rs in rates.items()}
    on, off = (crashes[m] or statistics.median(rates[m]) for m in ("on", "off"))
    print(f"| decode, {model.name}, {args.tokens} tokens, median of {args.reps} | tokens/s |")
    print("|---|---|")
    print(f"| extra buffer types on (llama.cpp's default) | {on if crashes['on'] else f'{on:.1f}'} |")
    print(f"| extra buffer types off (coedit) | {off if crashes['off'] else f'{off:.1f}'} |")
    print(f"| ratio off / on | {'-' if any(crashes.values()) else f'{off / on:.2f}'} |")
    print()

    from server.backends import LlamaCppBackend
    from server.model_process import ModelProcess
    convs = conversations(args.turns)
    local = LlamaCppBackend(model)
    worker = ModelProcess(str(model))
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "script.txt"
        script.write_text("EXIT\n")
        echo = ModelProcess(f"scripted:{script}")
        timed(local, convs[:2]), timed(worker, convs[:2])  # warm both before timing
        in_process, through, trip = timed(local, convs), timed(worker, convs), timed(echo, convs)
        echo.close()
    worker.close()
    turn, piped, rt = statistics.mean(in_process), statistics.mean(through), statistics.median(trip)
    print(f"| one turn, {len(convs)} conversations | seconds |")
    print("|---|---|")
    print(f"| model in this process (mean) | {turn:.3f} |")
    print(f"| model in its worker process (mean) | {piped:.3f} |")
    print(f"| round trip alone, no model (median) | {rt * 1000:.2f} ms |")
    print(f"| round trip / in-process turn | {100 * rt / turn:.2f}% |")


if __name__ == "__main__":
    main()
