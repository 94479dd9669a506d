"""bench/fix_union.py: what several engine runs of the same tasks fix together (docs/results.md)."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import fix_union  # noqa: E402


def run_json(path: Path, fixed: dict[str, str]) -> str:
    """A file in `trainer eval --json`'s engine shape; fixed: task id -> who fixed it ('' = not fixed)."""
    tasks = [{"id": t, "fixed": bool(by), "fixed_by": by} for t, by in fixed.items()]
    path.write_text(json.dumps({"k": 8, "tasks": tasks}))
    return str(path)


def test_union_of_three_runs(tmp_path, capsys):
    a = run_json(tmp_path / "a.json", {"mbpp/9": "search", "mbpp/10": "model·line", "mbpp/11": "", "mbpp/12": ""})
    b = run_json(tmp_path / "b.json", {"mbpp/9": "search", "mbpp/10": "", "mbpp/11": "model·episode", "mbpp/12": ""})
    c = run_json(tmp_path / "c.json", {"mbpp/9": "search", "mbpp/10": "model·line", "mbpp/11": "", "mbpp/12": ""})
    assert fix_union.main([a, b, c]) == 0
    out = capsys.readouterr().out
    assert "| a.json | 4 | 2 | model·line 1, search 1 |" in out
    assert "| b.json | 4 | 2 | model·episode 1, search 1 |" in out
    assert "fixed by every run: 1" in out and "fixed by none: 1" in out
    assert "fixed by some runs only: 2\n  mbpp/10: 2/3 (model·line, model·line)\n  mbpp/11: 1/3 (model·episode)" in out
    assert "union: 3/4 (75%)" in out


def test_runs_of_other_tasks_are_refused(tmp_path):
    a = run_json(tmp_path / "a.json", {"mbpp/9": "search"})
    b = run_json(tmp_path / "b.json", {"mbpp/10": "search"})
    with pytest.raises(SystemExit, match="not of the same tasks"):
        fix_union.main([a, b])


def test_a_file_that_is_not_an_engine_run_is_named(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"k": 4, "tasks": [{"id": "mbpp/9", "episodes": []}]}))
    with pytest.raises(SystemExit, match="bad.json: not a `trainer eval --json` file of the repair engine"):
        fix_union.main([str(bad)])
    missing = tmp_path / "none.json"
    with pytest.raises(SystemExit, match="none.json: cannot read it"):
        fix_union.main([str(missing)])
