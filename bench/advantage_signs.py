"""Which way does each GRPO advantage rule push the turns of real episodes?

GRPO should make a turn likelier when its episode did better than its group and less likely when it
did worse. This replays every episode of a `trainer eval --json` file through the one agent loop
with the paper's rewards, cut at `--max-turns` as an RL rollout would be (a cut episode that did
not EXIT takes the turn-cap penalty), treats each task's k episodes as one GRPO group, and scores
every turn with both rules of `trainer/rollout.py`:

    turn     per-turn normalisation, the paper's (`turn_advantages`; `trainer rl`'s default)
    episode  the episode's normalised return on every turn (`episode_advantages`)

For each rule, over the groups whose returns differ, it counts the turns pushed against their
episode's outcome: a positive advantage on a turn of an episode whose return is below its group's
mean, or a negative one above it. It also gives the mean advantage of the turns of solved and of
unsolved episodes. The eval's first episode of a task is greedy, the rest sampled, so a group here
is close to, not the same as, an RL group of sampled episodes.

    python bench/advantage_signs.py runs/eval-rl5-s1.json --max-turns 6
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsl import Verifier, load_tasks, run_episode, scripted_policy  # noqa: E402
from trainer.rollout import ADVANTAGES  # noqa: E402


def groups_of(run: dict, max_turns: int, verifier: Verifier) -> list[list[list[float]]]:
    """Per task, its episodes' per-turn rewards as RL would have scored them at `max_turns`."""
    tasks = {t.id: t for t in load_tasks(run["config"]["tasks"])}
    groups = []
    for result in run["tasks"]:
        group = []
        for ep in result["episodes"]:
            traj = run_episode(tasks[result["id"]], scripted_policy(ep["commands"][:max_turns]),
                               verifier=verifier, max_turns=max_turns)
            group.append([t.reward for t in traj.turns])
        groups.append(group)
    return groups


def returns_differ(group: list[list[float]]) -> bool:
    returns = [sum(rs) for rs in group]
    return max(returns) - min(returns) > 1e-9


def tally(groups: list[list[list[float]]], rule: str) -> dict:
    turns = against = 0
    solved, unsolved = [], []  # advantages of the turns of solved / unsolved episodes
    for group in filter(returns_differ, groups):  # equal returns: the outcome ranks nothing
        returns = [sum(rs) for rs in group]
        mean = sum(returns) / len(returns)
        for rs, ret, adv in zip(group, returns, ADVANTAGES[rule](group)):
            (solved if max(rs) > 0 else unsolved).extend(adv)
            turns += len(adv)
            against += sum((a > 1e-9 and ret < mean) or (a < -1e-9 and ret > mean) for a in adv)
    return {"turns": turns, "against": against,
            "solved": sum(solved) / len(solved) if solved else 0.0,
            "unsolved": sum(unsolved) / len(unsolved) if unsolved else 0.0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("eval_json", help="a `trainer eval --json` file (its episodes' commands are replayed)")
    p.add_argument("--max-turns", type=int, default=0, help="cut episodes here, as RL would (default: the eval's)")
    args = p.parse_args(argv)
    run = json.loads(Path(args.eval_json).read_text())
    max_turns = args.max_turns or run["config"]["max_turns"]
    verifier = Verifier()
    try:
        groups = groups_of(run, max_turns, verifier)
    finally:
        verifier.close()
    ranked = sum(map(returns_differ, groups))
    print(f"{len(groups)} groups of {run['k']} episodes at {max_turns} turns; {ranked} with returns that differ\n")
    print("| rule | turns | pushed against their episode's outcome | mean advantage, solved episodes' turns | unsolved |")
    print("|---|---|---|---|---|")
    for rule in ADVANTAGES:
        t = tally(groups, rule)
        share = t["against"] / t["turns"] if t["turns"] else 0.0
        print(f"| {rule} | {t['turns']} | {t['against']} ({share:.0%}) | {t['solved']:+.2f} | {t['unsolved']:+.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
