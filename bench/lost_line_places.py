"""Can the model write a lost line, and does it know where? On the MBPP-test corruptions that lost a
line (bench/lost_lines.py's groups), the shipped model is asked, from the start code's tool state:

- at the right place: the reference diff's first command's own start forced (`ADDL 4 >>>`,
  `REPL 2 >>>`), `--n` samples (the first greedy);
- at a place it picks: `ADDL` and `REPL` forced, the line number its own, `--n` samples each.

    python bench/lost_line_places.py [--tasks runs/eval-set/eval_mbpp_test.jsonl] [--limit 100] [--n 8]

Per task and in total: whether a sample is exactly one of the reference diff's commands ("exact"),
and whether one makes every test pass ("fixed"). The reference solutions are read here, in a
bench, only; the engine never sees them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dsl import (EditorState, ParseError, TaskCheck, Verifier, edit_script, load_mbpp, load_tasks,  # noqa: E402
                 new_conversation, parse)
from lost_lines import line_changes  # noqa: E402
from server.defaults import DEFAULT_MODEL  # noqa: E402
from server.model_process import ModelProcess  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="runs/eval-set/eval_mbpp_test.jsonl")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--n", type=int, default=8)
    args = ap.parse_args()
    reference = {t.id: t.code for t in load_mbpp(["test"])}
    model, verifier = ModelProcess(str(DEFAULT_MODEL), temperature=0.0, seed=1), Verifier()
    totals = dict.fromkeys(["tasks", "right place: exact", "right place: fixed", "its place: exact",
                            "its place: fixed"], 0)
    print("| task | lines changed | right place: exact / fixed | its place: exact / fixed |\n|---|---|---|---|")
    try:
        for task in load_tasks(args.tasks)[: args.limit]:
            kinds = line_changes(reference[task.id], task.code)
            if not {"deleted", "replaced"} & set(kinds):
                continue
            wanted = {str(c).strip() for c in edit_script(task.code, reference[task.id]) if c.op != "EXIT"}
            check = TaskCheck(task, verifier)
            first = check(task.code)
            check.learn(first)
            messages = new_conversation(task, EditorState.from_code(task.code).render(first.feedback))

            def judge(prefixes: list[str]) -> tuple[bool, bool]:
                exact = fixed = False
                for prefix in prefixes:
                    for text in dict.fromkeys(model.complete(messages, prefix, args.n, 0.7)):
                        cmd = parse(text)
                        new = EditorState.from_code(task.code).apply(cmd) if not isinstance(cmd, ParseError) else None
                        exact |= text.strip() in wanted
                        fixed |= isinstance(new, EditorState) and check(new.to_code()).passed
                return exact, fixed

            top = [c for c in edit_script(task.code, reference[task.id]) if c.op in ("ADDL", "REPL")]
            right = judge([str(top[-1]).split(">>>")[0] + ">>>"]) if top else (False, False)
            own = judge(["ADDL", "REPL"])
            totals["tasks"] += 1
            for key, value in zip(list(totals)[1:], right + own):
                totals[key] += value
            print(f"| {task.id} | {', '.join(kinds)} | {right[0]} / {right[1]} | {own[0]} / {own[1]} |", flush=True)
    finally:
        model.close()
    print("\n" + ", ".join(f"{k}: {v}" for k, v in totals.items()))


if __name__ == "__main__":
    main()
