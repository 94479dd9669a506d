"""Command line for the Chain-of-Edits tool.

    python -m dsl check TASKS.jsonl [--json] [--jobs N]   run each task's code against its tests
    python -m dsl verify CODE.py TESTS.py [--timeout S]   the feedback a model would see; exit 0 iff pass
    python -m dsl play TASKS.jsonl --id ID                type DSL commands, see what a model sees
    python -m dsl demo [--id mbpp/11]                     an MBPP task, broken, repaired by a scripted policy

TASKS.jsonl is the task format (see dsl/tasks.py) or MBPP's own rows.
"""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .commands import edit_script
from .conversation import SYSTEM_PROMPT
from .episode import Turn, run_episode, scripted_policy
from .sandbox import isolation
from .state import EditorState
from .tasks import Task, TaskFileError, load_mbpp, load_tasks
from .verifier import Verifier


def cmd_check(args: argparse.Namespace) -> int:
    tasks = load_tasks(args.tasks)
    verifiers = [Verifier() for _ in range(max(1, args.jobs))]

    def run(i_task: tuple[int, Task]):
        i, task = i_task
        return task, verifiers[i % len(verifiers)].verify(task.code, task.tests, task.timeout_s)

    n_pass = 0
    # one warm sandbox per worker thread; results print in task order
    with ThreadPoolExecutor(max_workers=len(verifiers)) as pool:
        for task, r in pool.map(run, enumerate(tasks)):
            n_pass += r.passed
            if args.json:
                print(json.dumps({"id": task.id, "passed": r.passed, "tests_passed": r.tests_passed,
                                  "tests_total": r.tests_total}), flush=True)
            else:
                first = r.feedback.split("\n")[-1] if not r.passed else ""
                print(f"{'PASS' if r.passed else 'FAIL'} {task.id} {r.tests_passed}/{r.tests_total} {first}"[:160], flush=True)
    for v in verifiers:
        v.close()
    print(f"{n_pass}/{len(tasks)} tasks pass (sandbox isolation: {isolation()})", file=sys.stderr)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    code, tests = Path(args.code).read_bytes(), Path(args.tests).read_bytes()
    v = Verifier()
    r = v.verify(code, tests, args.timeout)
    v.close()
    print(r.feedback)
    if r.isolation == "none":
        print("warning: ran without sandbox isolation (see the log)", file=sys.stderr)
    return 0 if r.passed else 1


def _show_turn(turn: Turn, _episode) -> None:
    mark = "" if turn.valid else "  (invalid)"
    print(f"\n>>> {turn.text.strip()}{mark}   reward {turn.reward:+.1f}")
    print(turn.observation)


def cmd_play(args: argparse.Namespace) -> int:
    tasks = {t.id: t for t in load_tasks(args.tasks)}
    if args.id not in tasks:
        print(f"no task {args.id!r} in {args.tasks} (ids look like {next(iter(tasks), '?')!r})", file=sys.stderr)
        return 2
    print(f"[system]\n{SYSTEM_PROMPT}\n")

    def person(messages: list[dict[str, str]]) -> str:
        if len(messages) == 2:
            print(f"[user]\n{messages[1]['content']}")
        try:
            return input("\ncommand> ")
        except EOFError:
            return "EXIT"

    traj = run_episode(tasks[args.id], person, max_turns=args.max_turns, on_turn=_show_turn)
    print(f"\n{'solved' if traj.solved else 'not solved'} in {len(traj.turns)} turns, reward {traj.reward:+.1f}")
    return 0 if traj.solved else 1


_DEMO_SWAPS = [(" + ", " - "), (" - ", " + "), (" < ", " > "), (" > ", " < "), ("==", "!="), ("min(", "max("),
               ("max(", "min("), ("[0]", "[1]"), ("[1]", "[0]"), ("True", "False"), (" 1", " 2"), ("(1", "(2")]


def demo_bug(task: Task, verifier: Verifier) -> str | None:
    """A one-token bug the tests catch (demo only; the trainer has the real corruption engine)."""
    lines = task.code.split("\n")
    for i, line in enumerate(lines):
        for old, new in _DEMO_SWAPS:
            if old in line and not line.lstrip().startswith("def "):
                buggy = "\n".join(lines[:i] + [line.replace(old, new, 1)] + lines[i + 1:])
                if not verifier.verify(buggy, task.tests, task.timeout_s).passed:
                    return buggy
    return None


def cmd_demo(args: argparse.Namespace) -> int:
    tasks = {t.id: t for t in load_mbpp(["test"])}
    task = tasks.get(args.id)
    if task is None:
        print(f"no MBPP test task {args.id!r}", file=sys.stderr)
        return 2
    verifier = Verifier()
    buggy = demo_bug(task, verifier)
    if buggy is None:
        print(f"{task.id}: found no one-token bug to demo; try another --id", file=sys.stderr)
        return 2
    broken = Task(task.id, buggy, task.tests, task.entry_point, task.description)
    print(f"{task.id}: {task.description}\nA scripted policy repairs a one-token bug; this is what the model sees:\n")
    policy = scripted_policy(edit_script(buggy, task.code))
    print(f"[initial state]\n{_initial_view(broken, verifier)}")
    traj = run_episode(broken, policy, verifier=verifier, on_turn=_show_turn)
    verifier.close()
    print(f"\n{'solved' if traj.solved else 'NOT solved'} in {len(traj.turns)} turns, reward {traj.reward:+.1f}")
    return 0 if traj.solved else 1


def _initial_view(task: Task, verifier: Verifier) -> str:
    return EditorState.from_code(task.code).render(verifier.verify(task.code, task.tests).feedback)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dsl", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="run each task's code against its tests")
    c.add_argument("tasks")
    c.add_argument("--json", action="store_true", help="one JSON object per task per line")
    c.add_argument("--jobs", type=int, default=2, help="parallel sandboxes (default 2)")
    v = sub.add_parser("verify", help="print the feedback a model would see; exit 0 iff all tests pass")
    v.add_argument("code")
    v.add_argument("tests")
    v.add_argument("--timeout", type=float, default=None, help="seconds (default 10)")
    pl = sub.add_parser("play", help="type DSL commands and see exactly what a model sees")
    pl.add_argument("tasks")
    pl.add_argument("--id", required=True)
    pl.add_argument("--max-turns", type=int, default=10)
    d = sub.add_parser("demo", help="a scripted repair of a broken MBPP task")
    d.add_argument("--id", default="mbpp/11")
    args = p.parse_args(argv)
    try:
        return {"check": cmd_check, "verify": cmd_verify, "play": cmd_play, "demo": cmd_demo}[args.cmd](args)
    except (TaskFileError, FileNotFoundError, IsADirectoryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
