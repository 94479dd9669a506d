"""bench/compare_evals.py: the paired comparison docs/results.md's model-vs-model claims come from."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import compare_evals  # noqa: E402


def eval_json(path: Path, outcomes: dict[str, str], k: int = 4) -> str:
    """A file in `trainer eval --json`'s shape; outcomes: task id -> '1' solved / '0' not, per episode."""
    tasks = [{"id": t, "episodes": [{"solved": c == "1", "turns": 3 if c == "1" else 10, "invalid": 0, "tokens": 20,
                                     "commands": ["EXIT"] * 2} for c in pattern]}
             for t, pattern in outcomes.items()]
    path.write_text(json.dumps({"k": k, "tasks": tasks}))
    return str(path)


def test_sign_test_matches_the_binomial_by_hand():
    assert compare_evals.sign_test(5, 1) == pytest.approx(2 * (1 + 6) / 64)
    assert compare_evals.sign_test(0, 0) == 1.0
    assert compare_evals.sign_test(3, 3) == 1.0


def test_paired_comparison_over_two_slices(tmp_path, capsys):
    a = [eval_json(tmp_path / "a1.json", {"mbpp/1": "1000", "mbpp/2": "0000"}),
         eval_json(tmp_path / "a2.json", {"mbpp/3": "0100"})]
    b = [eval_json(tmp_path / "b.json", {"mbpp/1": "1000", "mbpp/2": "1100", "mbpp/3": "0000"})]
    assert compare_evals.main(["--a", *a, "--b", *b, "--names", "old", "new"]) == 0
    out = capsys.readouterr().out
    assert "| old | 3 | 12 | 16.7% | 1/3 | 2/3 (67%) |" in out
    assert "| new | 3 | 12 | 25.0% | 2/3 | 2/3 (67%) |" in out
    assert "| mbpp/2 | .... | Gs.. |" in out and "| mbpp/3 | .s.. | .... |" in out
    assert "| mbpp/1 |" not in out.split("tasks where")[1]  # same outcomes: not listed
    assert "pass@1 new - old: +8.3 points" in out
    assert "new alone solves 1, old alone 0" in out


def test_sides_over_different_tasks_are_a_clear_error(tmp_path):
    a = eval_json(tmp_path / "a.json", {"mbpp/1": "1000"})
    b = eval_json(tmp_path / "b.json", {"mbpp/2": "1000"})
    with pytest.raises(SystemExit, match="different tasks"):
        compare_evals.main(["--a", a, "--b", b])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit, match="not a `trainer eval --json` file"):
        compare_evals.main(["--a", str(tmp_path / "bad.json"), "--b", b])


def test_pooled_runs_of_the_same_tasks(tmp_path, capsys):
    """--pool: a second run (another --seed) of the same tasks adds episodes; pass@1 is the mean of
    the runs'. Without --pool a repeated task is a clear error."""
    a = [eval_json(tmp_path / "a1.json", {"mbpp/1": "1000", "mbpp/2": "0000"}),
         eval_json(tmp_path / "a2.json", {"mbpp/1": "1100", "mbpp/2": "0001"})]
    b = [eval_json(tmp_path / "b1.json", {"mbpp/1": "1000", "mbpp/2": "0000"}),
         eval_json(tmp_path / "b2.json", {"mbpp/1": "1000", "mbpp/2": "0000"})]
    with pytest.raises(SystemExit, match="more than one file of the same side"):
        compare_evals.main(["--a", *a, "--b", *b])
    assert compare_evals.main(["--a", *a, "--b", *b, "--pool"]) == 0
    out = capsys.readouterr().out
    assert "| A | 2 | 16 | 25.0% | 1/2 | 2/2 (100%) |" in out  # (1+2+0+1)/16; mbpp/2 solved only in run 2
    assert "| B | 2 | 16 | 12.5% | 1/2 | 1/2 (50%) |" in out
    assert "| mbpp/1 | G...Gs.. | G...G... |" in out
    # sides pooled over different numbers of runs: a task with the same solve rate is not listed
    twice = [b[0], b[1]]  # mbpp/1: 2 of 8 episodes solved; mbpp/2: none
    once = eval_json(tmp_path / "c.json", {"mbpp/1": "1000", "mbpp/2": "0100"})
    assert compare_evals.main(["--a", *twice, "--b", once, "--pool"]) == 0
    out = capsys.readouterr().out.split("tasks where")[1]
    assert "| mbpp/2 | ........ | .s.. |" in out and "| mbpp/1 |" not in out  # 2/8 against 1/4: same rate


def test_one_side_alone_prints_its_summary_over_the_slices(tmp_path, capsys):
    a = [eval_json(tmp_path / "a1.json", {"mbpp/1": "1000", "mbpp/2": "0000"}),
         eval_json(tmp_path / "a2.json", {"mbpp/3": "0110"})]
    assert compare_evals.main(["--a", *a, "--names", "shipped"]) == 0
    out = capsys.readouterr().out
    assert "| shipped | 3 | 12 | 25.0% | 1/3 | 2/3 (67%) |" in out
    assert "tasks where" not in out and "pass@1" in out.split("\n")[0]
