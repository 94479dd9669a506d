"""bench/replay_eval.py: replaying a `trainer eval --json` file through the real agent loop and sandbox."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import replay_eval  # noqa: E402

FIX, WRONG = "REPL 2 >>>    return a + b", "REPL 2 >>>    return a * b"


def write_run(tmp_path: Path, episodes: dict[str, list[dict]]) -> str:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"id": t, "entry_point": "add", "code": "def add(a, b):\n    return a - b\n",
                                         "tests": "assert add(1, 2) == 3\n"}) + "\n" for t in episodes))
    run = tmp_path / "eval.json"
    run.write_text(json.dumps({"k": 2, "config": {"tasks": str(tasks)},
                               "tasks": [{"id": t, "episodes": eps} for t, eps in episodes.items()]}))
    return str(run)


def test_turn_cap_counts_the_first_passing_turn_and_what_stopping_there_saves(tmp_path, capsys):
    run = write_run(tmp_path, {
        # greedy fixes at turn 1 and then runs on; the sample fixes at turn 3
        "t/1": [{"solved": True, "commands": [FIX, "REPL 1 >>>def add(a, b):"]},
                {"solved": True, "commands": [WRONG, WRONG, FIX]}],
        # greedy breaks it further; the sample fixes at turn 2, breaks it at 3 and ends failing
        "t/2": [{"solved": False, "commands": [WRONG, "EXIT"]},
                {"solved": False, "commands": [WRONG, FIX, WRONG]}],
    })
    assert replay_eval.main(run) == 0
    out = capsys.readouterr().out
    assert "| tasks (best of k) | 2 | 1 | 2 |" in out  # passes at some turn: both; at the end: one
    cap = out.split("| turn cap |")[1]
    # cap | episodes passing by then | greedy | tasks | commands run (stopping once the tests pass), of 10 recorded
    assert "| 1 | 1 | 1 | 1 | 4 (40%) |" in cap
    assert "| 2 | 2 | 1 | 2 | 7 (70%) |" in cap
    assert "| 3 | 3 | 1 | 2 | 8 (80%) |" in cap


def test_a_replay_that_disagrees_with_the_file_is_refused(tmp_path):
    run = write_run(tmp_path, {"t/1": [{"solved": False, "commands": [FIX]}]})
    with pytest.raises(SystemExit, match="disagrees with the recorded outcome"):
        replay_eval.main(run)
