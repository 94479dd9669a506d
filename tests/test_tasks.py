"""Task loading: MBPP splits, the task JSONL format, and clear errors for bad files."""
from __future__ import annotations

import json
import re

import pytest

from dsl import Task, load_mbpp, load_tasks, write_tasks
from dsl.tasks import TaskFileError, shared_dir


def test_mbpp_splits_and_fields():
    counts = {s: len(load_mbpp([s])) for s in ("prompt", "test", "validation", "train")}
    assert counts == {"prompt": 10, "test": 500, "validation": 90, "train": 374}
    test = load_mbpp(["test"])
    assert [t.id for t in test[:2]] == ["mbpp/11", "mbpp/12"] and test[-1].id == "mbpp/510"
    t = test[0]
    assert t.split == "test" and t.description.startswith("Write a python function to remove first and last")
    assert t.tests.count("assert ") == 3 and "\r" not in t.code
    assert t.entry_point == "remove_Occ"
    assert sum(x.entry_point is not None for x in test) >= 495


def test_mbpp_setup_code_is_part_of_the_tests():
    task = next(t for t in load_mbpp(["test"]) if t.id == "mbpp/367")
    assert task.tests.startswith("root = Node(1)\nroot.left = Node(2)\n") and task.tests.count("assert ") == 3


def test_training_splits_never_include_test_tasks():
    ids = {int(t.id.split("/")[1]) for t in load_mbpp(["train", "validation"])}
    assert min(ids) == 511 and not ids & set(range(11, 511))


def test_quixbugs_loads_in_the_task_format():
    tasks = load_tasks(shared_dir() / "bench" / "quixbugs.jsonl")
    assert len(tasks) == 40 and all(t.entry_point and t.timeout_s for t in tasks)


def test_round_trip(tmp_path):
    tasks = [Task("a", "x = 1", "assert x == 1", timeout_s=2.0), Task("b", "y = 2", "assert y == 2", "y", "desc")]
    assert write_tasks(tmp_path / "t.jsonl", tasks) == 2
    assert load_tasks(tmp_path / "t.jsonl") == tasks


@pytest.mark.parametrize("line,message", [
    ("not json", ":1: not JSON"),
    ('["a"]', ":1: expected a JSON object"),
    ('{"id": "a", "code": "x"}', ":1: missing or non-string field(s): tests"),
    ('{"id": "a", "code": "x", "tests": "assert 1", "timeout_s": -1}', "timeout_s must be a positive number"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(TaskFileError, match=re.escape(message)):
        load_tasks(path)


def test_duplicate_ids_and_missing_files(tmp_path):
    path = tmp_path / "dup.jsonl"
    row = json.dumps({"id": "a", "code": "x", "tests": "assert 1"})
    path.write_text(row + "\n\n" + row + "\n")
    with pytest.raises(TaskFileError, match=":3: duplicate id 'a'"):
        load_tasks(path)
    with pytest.raises(TaskFileError, match="no such file"):
        load_tasks(tmp_path / "missing.jsonl")
    with pytest.raises(TaskFileError, match="unknown MBPP split"):
        load_mbpp(["dev"])
