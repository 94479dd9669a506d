"""The trainer's data stage: corruptions, demonstrations that replay through the real tool, no leaks."""
from __future__ import annotations

import json
import random

import pytest

from dsl import EditorState, Task, load_mbpp, run_episode, scripted_policy
from trainer.corrupt import OPERATORS, corrupt, corrupt_once, repair_commands
from trainer.data import DataConfig, build, line_pool


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


def test_deterministic_for_a_seed(tmp_path, built):
    out, _ = built
    again = tmp_path / "again"
    build(DataConfig(out=str(again), n=60, seed=3, workers=1))
    assert (again / "sft_coe.jsonl").read_text() == (out / "sft_coe.jsonl").read_text()
    assert (again / "eval_mbpp_test.jsonl").read_text() == (out / "eval_mbpp_test.jsonl").read_text()
