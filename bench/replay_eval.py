"""Replays every episode of a `trainer eval --json` file through the one agent loop and reports:

1. Does the model fix the code and then break it again? Episodes whose code passes at some turn
   against those whose final code passes; if the first is larger, stopping when the tests pass (as
   the server does) would gain that much.
2. Why its commands fail: failing commands by operation and error (numbers and quoted text masked).
3. Does it stop? Valid edits that leave the code as it was (a line replaced by itself), edits
   that bring back code the episode already had (no-ops and undos: what `redraws` draws again,
   dsl/episode.py), the episodes with one, and episodes the model ended with EXIT rather than the
   turn cap.
4. Does the turn cap bind? Per cap m: the episodes and tasks (best of k) whose code passes by turn
   m, and the commands an evaluation would have run stopping there or once the tests pass (as a
   share of the commands the file records, which ran on after a pass). That is what the server,
   which stops once the tests pass, would get with `maxTurns` m: exactly for the greedy episodes
   (the state does not show the cap), and for the sampled ones a fair sample, though a run with
   that cap would draw other seeds.

    python bench/replay_eval.py runs/eval-smollm2-coe-mbpp.json
"""
from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsl import EditorState, Verifier, load_tasks, run_episode, scripted_policy  # noqa: E402

MASK = re.compile(r"'[^']*'|[0-9]+")  # so errors that differ only in the line or the word count together


def main(path: str) -> int:
    run = json.loads(Path(path).read_text())
    tasks = {t.id: t for t in load_tasks(run["config"]["tasks"])}
    verifier = Verifier()
    rows = {"episodes": [0, 0], "tasks (best of k)": [0, 0]}  # [passes at some turn, passes at the end]
    failures, commands, noops, exits = Counter(), 0, 0, 0
    edits, revisits, looping = 0, 0, 0  # valid edits; those that bring back earlier code; episodes with one
    capped = []  # per task: (first passing turn or None, turns run) per episode
    for result in run["tasks"]:
        ever_any = end_any = False
        capped.append([])
        for ep in result["episodes"]:
            # the recorded commands through the one agent loop; max_turns stops it where the model stopped
            traj = run_episode(tasks[result["id"]], scripted_policy(ep["commands"]), verifier=verifier,
                               max_turns=max(len(ep["commands"]), 1))
            if traj.solved != ep["solved"]:
                raise SystemExit(f"{result['id']}: the replay disagrees with the recorded outcome")
            first = next((i for i, t in enumerate(traj.turns, 1) if t.solved), None)  # first passing turn
            ever = first is not None
            capped[-1].append((first, len(traj.turns)))
            commands += len(traj.turns)
            state = EditorState.from_code(tasks[result["id"]].code)
            seen, revisited = {state.to_code()}, 0
            for t in traj.turns:
                if t.valid and t.command.op != "EXIT":
                    after = state.apply(t.command)
                    noops += after == state
                    revisited += after.to_code() in seen
                    seen.add(after.to_code())
                    edits += 1
                    state = after
            revisits += revisited
            looping += revisited > 0
            exits += any(t.valid and t.command.op == "EXIT" for t in traj.turns)
            failures.update(f"{t.text.split(' ', 1)[0]}: {MASK.sub('…', t.error.split('. Use one of')[0])}" for t in traj.turns if t.error)
            rows["episodes"][0] += ever
            rows["episodes"][1] += traj.solved
            ever_any, end_any = ever_any or ever, end_any or traj.solved
        rows["tasks (best of k)"][0] += ever_any
        rows["tasks (best of k)"][1] += end_any
    verifier.close()
    n_eps = sum(len(r["episodes"]) for r in run["tasks"])
    print(f"| {Path(path).name} | passes at some turn | passes at the end | of |\n|---|---|---|---|")
    for name, (ever, end) in rows.items():
        print(f"| {name} | {ever} | {end} | {n_eps if name == 'episodes' else len(run['tasks'])} |")
    print(f"\n| failing commands: {sum(failures.values())} of {commands} | count |\n|---|---|")
    for kind, n in failures.most_common(8):
        print(f"| {kind} | {n} |")
    print(f"\n| stopping | count | of |\n|---|---|---|\n| edits that change nothing | {noops} | {commands} commands |\n"
          f"| edits that bring back code the episode had | {revisits} | {edits} valid edits |\n"
          f"| episodes with such an edit | {looping} | {n_eps} episodes |\n"
          f"| episodes ended by EXIT | {exits} | {n_eps} episodes |")
    print(turn_cap_table(capped, commands))
    return 0


def turn_cap_table(capped: list[list[tuple[int | None, int]]], commands: int) -> str:
    """Section 4 of the docstring: per turn cap, what passes by then and what it costs."""
    top = max((n for eps in capped for _, n in eps), default=0)
    rows = ["\n| turn cap | episodes passing by then | greedy (first episode) | tasks (best of k) | commands run |",
            "|---|---|---|---|---|"]
    for m in range(1, top + 1):
        by = [[first is not None and first <= m for first, _ in eps] for eps in capped]
        run = sum(min(n, first or n, m) for eps in capped for first, n in eps)  # stopping once the tests pass
        rows.append(f"| {m} | {sum(map(sum, by))} | {sum(b[0] for b in by if b)} | {sum(map(any, by))} | "
                    f"{run} ({100 * run / max(commands, 1):.0f}%) |")
    return "\n".join(rows)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(main(sys.argv[1]))
