"""The served model merged (server/backends/lora_merge.py) against its adapter applied at run time:
reading and decoding speed, and how often the two agree on the next token.

    python bench/lora_merge_speed.py [--model models/default/coedit.gguf] [--reps 3] [--tokens 60]

Each measurement loads the model in a fresh process (alternating the two, `--reps` times each) and
reads the first `--prompt` tokens of a real conversation (an MBPP-test task's first tool state),
then decodes `--tokens` single tokens; read tok/s and decode ms/token are the medians. Agreement:
the share of the conversation's positions where both models' most likely next token is the same.
Prints a markdown table; ratio = runtime adapter / merged (above 1: the merged model is faster).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.defaults import DEFAULT_MODEL  # noqa: E402

RUN = """
import json, sys, time
import numpy as np
from pathlib import Path
from dsl import Episode, Task, load_mbpp, new_conversation
from server.backends import gguf_meta, lora_base
from server.backends.llamacpp import LlamaCppBackend
from server.backends.lora_merge import merged_gguf
from server.backends.tokens import CHATML, LlamaTokenizer, TokenFormat
path, kind, prompt, tokens = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
base = lora_base(gguf_meta(path)["lora_base"], path)
files = dict(model_path=str(merged_gguf(base, path))) if kind == "merged" else dict(model_path=str(base), lora_path=str(path))
llm = LlamaCppBackend._plain(n_ctx=2048, n_threads=0, logits_all=sys.argv[5] == "logits", verbose=False, **files)
task = next(t for t in load_mbpp(["test"]) if len(t.code) > 200)
ids = TokenFormat(LlamaTokenizer(llm), CHATML).prompt(new_conversation(task, Episode(task).reset()))[:prompt]
t = time.perf_counter(); llm.eval(ids); read = len(ids) / (time.perf_counter() - t)
if sys.argv[5] == "logits":
    print(json.dumps({"top": np.asarray(llm.scores[: len(ids)]).argmax(axis=1).tolist()}))
    raise SystemExit
t = time.perf_counter()
for i in range(tokens):
    llm.eval([ids[i]])
print(json.dumps({"read": read, "decode_ms": 1000 * (time.perf_counter() - t) / tokens}))
"""


def measure(model: Path, kind: str, prompt: int, tokens: int, what: str = "speed") -> dict:
    res = subprocess.run([sys.executable, "-c", RUN, str(model), kind, str(prompt), str(tokens), what],
                         capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
    if res.returncode != 0:
        raise SystemExit(f"{kind} run failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--prompt", type=int, default=400)
    ap.add_argument("--tokens", type=int, default=60)
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"runtime adapter": [], "merged (served)": []}
    for _ in range(args.reps):
        for label, kind in (("runtime adapter", "runtime"), ("merged (served)", "merged")):
            runs[label].append(measure(Path(args.model), kind, args.prompt, args.tokens))
    top = {kind: measure(Path(args.model), kind, args.prompt, 0, "logits")["top"] for kind in ("runtime", "merged")}
    agree = sum(a == b for a, b in zip(top["runtime"], top["merged"])) / len(top["runtime"])
    med = {label: (statistics.median(r["read"] for r in rs), statistics.median(r["decode_ms"] for r in rs))
           for label, rs in runs.items()}
    print(f"| model ({args.model}) | read tok/s | decode ms/token |")
    print("|---|---|---|")
    for label, (read, dec) in med.items():
        print(f"| {label} | {read:.0f} | {dec:.1f} |")
    (r_read, r_dec), (m_read, m_dec) = med["runtime adapter"], med["merged (served)"]
    print(f"| ratio (runtime / merged time) | {m_read / r_read:.2f}x | {r_dec / m_dec:.2f}x |")
    print(f"\nsame most likely next token at {agree:.1%} of {len(top['runtime'])} positions")


if __name__ == "__main__":
    main()
