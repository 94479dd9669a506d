"""bench/advantage_signs.py: both GRPO advantage rules scored on episodes replayed through the real loop."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import advantage_signs  # noqa: E402

FIX, WRONG = "REPL 2 >>>    return a + b", "REPL 2 >>>    return a * b"


def test_the_turn_rule_pushes_down_a_winning_episodes_last_turn_and_the_episode_rule_does_not(tmp_path, capsys):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"id": t, "entry_point": "add", "code": "def add(a, b):\n    return a - b\n",
                                         "tests": "assert add(1, 2) == 3\n"}) + "\n" for t in ("t/1", "t/2")))
    run = tmp_path / "eval.json"
    run.write_text(json.dumps({"k": 2, "config": {"tasks": str(tasks), "max_turns": 10}, "tasks": [
        # rewards at 3 turns: [0, 1, 0] (solved, then EXIT) and [0, 0, -0.5] (cut at the cap without EXIT;
        # the fourth command is never played)
        {"id": "t/1", "episodes": [{"commands": [WRONG, FIX, "EXIT"]}, {"commands": [WRONG] * 4}]},
        # both EXIT unsolved: equal returns, so the group is left out of the tally
        {"id": "t/2", "episodes": [{"commands": [WRONG, "EXIT"]}, {"commands": ["EXIT"]}]},
    ]}))
    assert advantage_signs.main([str(run), "--max-turns", "3"]) == 0
    out = capsys.readouterr().out
    assert "2 groups of 2 episodes at 3 turns; 1 with returns that differ" in out
    # per-turn normalisation over [0, 1, 0, 0, 0, -0.5] (mean 1/12): the winner's EXIT turn, scoring 0,
    # is pushed down; the solved episode's turns average +1.11, the capped one's -1.49
    assert "| turn | 6 | 1 (17%) | +1.11 | -1.49 |" in out
    assert "| episode | 6 | 0 (0%) | +1.00 | -1.00 |" in out
