"""The trainer's data stage: corruptions, demonstrations that replay through the real tool, no leaks."""
from __future__ import annotations

import json
import random

import pytest

from dsl import EditorState, Task, Verifier, load_mbpp, run_episode, scripted_policy
from trainer.corrupt import OPERATORS, corrupt, corrupt_once, repair_commands
from trainer.data import DataConfig, build, line_pool, workspace_form


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    stats = build(DataConfig(out=str(out), n=60, seed=3, workers=2))
    return out, stats


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_operator_corrupts_and_inverts_exactly():
    train = load_mbpp(["train"])
    pool = line_pool(train)
    rng = random.Random(0)
    for op in OPERATORS:
        done = 0
        for task in train[:80]:
            state = EditorState.from_code(task.code)
            step = corrupt_once(state, rng, pool, (op,))
            if step is None:
                continue
            after, c = step
            assert c.operator == op and after.lines != state.lines
            assert after.apply(c.inverse).lines == state.lines
            done += 1
        assert done >= 10, op  # each operator finds work on real MBPP code


def test_multi_edit_corruptions_repair_to_the_original():
    train = load_mbpp(["validation"])
    pool = line_pool(train)
    rng = random.Random(1)
    for task in train[:40]:
        broken = corrupt(task.code, rng, rng.randint(1, 5), pool)
        if broken is None:
            continue
        buggy, cs = broken
        state = EditorState.from_code(buggy)
        for cmd in repair_commands(cs)[:-1]:
            state = state.apply(cmd)
        assert state.to_code() == task.code


def test_demonstrations_replay_through_the_real_tool_to_a_solved_state(built):
    out, stats = built
    rows = _rows(out / "sft_coe.jsonl")
    assert len(rows) == stats["demonstrations"] == 60
    tasks = {t.id: t for t in load_mbpp(["train", "validation"])}
    for row in rows:
        msgs = row["messages"]
        commands = [m["content"] for m in msgs if m["role"] == "assistant"]
        assert commands[-1] == "EXIT" and len(commands) == row["n_edits"] + 1
        task = tasks[row["task_id"]]
        replay = run_episode(Task(task.id, row["buggy"], task.tests, task.entry_point, task.description),
                             scripted_policy(commands))
        assert replay.solved and replay.exited and replay.invalid_turns == 0 and not replay.initial_solved
        assert replay.messages == msgs  # the very same states, turn by turn
        assert replay.final_code == task.code


def test_direct_pairs_match_the_demonstrations(built):
    out, _ = built
    coe = {r["id"]: r for r in _rows(out / "sft_coe.jsonl")}
    direct = _rows(out / "sft_direct.jsonl")
    assert [r["id"] for r in direct] == list(coe)
    tasks = {t.id: t for t in load_mbpp(["train", "validation"])}
    for r in direct:
        assert [m["role"] for m in r["messages"]] == ["system", "user", "assistant"]
        assert r["messages"][2]["content"] == tasks[r["task_id"]].code


def test_no_test_split_problem_leaks_into_training_data(built):
    out, _ = built
    test_tasks = load_mbpp(["test", "prompt"])
    test_ids = {t.id for t in test_tasks}
    blob = (out / "sft_coe.jsonl").read_text() + (out / "sft_direct.jsonl").read_text()
    rows = _rows(out / "sft_coe.jsonl")
    assert not {r["task_id"] for r in rows} & test_ids
    for t in test_tasks:  # no test-split assert or solution text either
        first_assert = next(line for line in t.tests.split("\n") if line.startswith("assert"))
        assert first_assert not in blob
        if len(t.code) > 80:
            assert t.code not in blob


def test_eval_set_is_the_corrupted_test_split_and_fails(built):
    out, stats = built
    rows = _rows(out / "eval_mbpp_test.jsonl")
    assert stats["eval_tasks"] == len(rows) >= 490
    ids = {t.id: t for t in load_mbpp(["test"])}
    assert all(r["id"] in ids and r["code"] != ids[r["id"]].code for r in rows)
    pytest_form = _rows(out / "eval_mbpp_test_pytest.jsonl")  # the same tasks as a workspace shows them
    assert [(r["id"], r["code"]) for r in pytest_form] == [(r["id"], r["code"]) for r in rows]
    assert all(r["tests"].startswith("def test_") and not r.get("description") for r in pytest_form)


def test_deterministic_for_a_seed(tmp_path, built):
    out, _ = built
    again = tmp_path / "again"
    build(DataConfig(out=str(again), n=60, seed=3, workers=1))
    assert (again / "sft_coe.jsonl").read_text() == (out / "sft_coe.jsonl").read_text()
    assert (again / "eval_mbpp_test.jsonl").read_text() == (out / "eval_mbpp_test.jsonl").read_text()


def test_workspace_form_wraps_the_asserts_in_pytest_functions_and_drops_the_description():
    task = next(t for t in load_mbpp(["train"]) if t.tests.count("assert") == 3)
    v = Verifier()
    shapes = set()
    try:
        for seed in range(8):
            ws = workspace_form(task, random.Random(seed))
            assert ws.description is None and ws.code == task.code and ws.entry_point == task.entry_point
            assert "\nassert" not in "\n" + ws.tests and ws.tests.startswith(f"def test_{task.entry_point}")
            good = v.verify(task.code, ws.tests)
            shapes.add(good.tests_total)
            assert good.passed
            bad = v.verify(f"{task.code}\n\ndef {task.entry_point}(*args):\n    return None\n", ws.tests)
            assert not bad.passed and "\nFailed: test_" in bad.feedback
    finally:
        v.close()
    assert shapes == {1, 3}  # one function holding every assert, or one function per assert


def test_a_pytest_share_renders_the_same_corruptions_in_workspace_form(tmp_path, built):
    out, _ = built
    build(DataConfig(out=str(tmp_path), n=20, seed=3, workers=2, eval_set=False, pytest_share=1.0))
    rows = _rows(tmp_path / "sft_coe.jsonl")
    plain = _rows(out / "sft_coe.jsonl")[:20]
    assert [r["buggy"] for r in rows] == [r["buggy"] for r in plain]  # the share changes the form only
    assert {r["form"] for r in rows} == {"pytest"} and {r["form"] for r in plain} == {"mbpp"}
    tasks = {t.id: t for t in load_mbpp(["train", "validation"])}
    for row in rows:
        first = row["messages"][1]["content"]
        assert first.startswith("Tests:\ndef test_") and "Task:" not in first
        tests = first[len("Tests:\n"): first.index("\n\nCode:\n")] + "\n"
        commands = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
        replay = run_episode(Task(row["task_id"], row["buggy"], tests), scripted_policy(commands))
        assert replay.solved and replay.exited and replay.messages == row["messages"]
        assert replay.final_code == tasks[row["task_id"]].code
    direct = _rows(tmp_path / "sft_direct.jsonl")
    assert all(r["messages"][1]["content"].startswith("Tests:\ndef test_") for r in direct)
