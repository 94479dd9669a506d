"""Episodes, rewards and the one rollout loop, on the real verifier."""
from __future__ import annotations

import pytest

from dsl import (SYSTEM_PROMPT, Command, Episode, Task, edit_script, load_mbpp, run_episode,
                 scripted_policy)
from dsl.__main__ import demo_bug

BUGGY = Task("t/add", "def add(a, b):\n    return a - b\n", "assert add(1, 2) == 3\nassert add(0, 0) == 0\nassert add(2, 2) == 4",
             "add", "Add two numbers.")
FIX = "REPW 2 >>>- >>>+"


def rewards(task, commands, **kw):
    traj = run_episode(task, scripted_policy(commands), **kw)
    return [t.reward for t in traj.turns], traj


def test_solve_on_turn_k_then_exit():
    r, traj = rewards(BUGGY, ["ADDL 2 >>>    pass", "DELL 2", FIX, "EXIT"])
    assert r == [0.0, 0.0, 1.0, 0.0]
    assert traj.solved and traj.exited and traj.reward == 1.0 and not traj.initial_solved
    assert traj.final_code == "def add(a, b):\n    return a + b\n"


def test_malformed_and_unappliable_commands_cost_half_and_change_nothing():
    r, traj = rewards(BUGGY, ["FIX IT", "DELL 9", "REPW 2 >>>* >>>+", FIX, "EXIT"])
    assert r == [-0.5, -0.5, -0.5, 1.0, 0.0]
    assert [t.valid for t in traj.turns] == [False, False, False, True, True]
    assert traj.turns[0].observation.startswith("Invalid command: unknown command 'FIX'")
    assert traj.turns[1].observation.startswith("DELL 9: no such line (the code has lines 1-2).")
    assert traj.invalid_turns == 3 and traj.solved


def test_no_exit_at_turn_cap_is_penalised_on_the_last_turn():
    r, traj = rewards(BUGGY, ["ADDL 1 >>># a"] * 3, max_turns=3)
    assert r == [0.0, 0.0, -0.5]
    assert not traj.exited and not traj.solved and len(traj.turns) == 3


def test_solved_but_not_exited_still_pays_the_cap_penalty():
    r, traj = rewards(BUGGY, [FIX, "ADDL 1 >>># done"], max_turns=2)
    assert r == [1.0, -0.5] and traj.solved and not traj.exited


def test_already_solved_start_earns_nothing():
    good = Task("t/good", "def add(a, b):\n    return a + b\n", BUGGY.tests)
    r, traj = rewards(good, ["EXIT"])
    assert r == [0.0] and traj.initial_solved and traj.solved


def test_breaking_and_resolving_pays_once():
    r, _ = rewards(BUGGY, [FIX, "REPW 2 >>>+ >>>-", FIX, "EXIT"])
    assert r == [1.0, 0.0, 0.0, 0.0]


def test_partial_credit_rewards_change_in_share_of_tests_passing():
    # `a - b` passes 1 of 3 (add(0,0)); `a * b` passes 2 (0*0, 2*2); `a + b` all 3
    r, _ = rewards(BUGGY, ["REPW 2 >>>- >>>*", "REPW 2 >>>* >>>+", "EXIT"], reward="partial")
    assert r == pytest.approx([1 / 3, 1.0 + 1 / 3, 0.0])


def test_stop_when_solved_ends_without_penalty():
    r, traj = rewards(BUGGY, [FIX, "DELL 1"], stop_when_solved=True)
    assert r == [1.0] and len(traj.turns) == 1 and traj.solved


def test_conversation_format_and_callbacks():
    seen, polls = [], []

    def policy(messages):
        seen.append([m["role"] for m in messages])
        return FIX if len(messages) == 2 else "EXIT"

    traj = run_episode(BUGGY, policy, on_turn=lambda turn, ep: polls.append(ep.turn))
    assert seen == [["system", "user"], ["system", "user", "assistant", "user"]]
    assert traj.messages[0]["content"] == SYSTEM_PROMPT
    first = traj.messages[1]["content"]
    assert first.startswith("Task: Add two numbers.\n\nTests:\nassert add(1, 2) == 3")
    assert first.endswith("Code:\nL 1 def add(a, b):\nL 2     return a - b\n***\nTests: 1/3 pass.\n"
                          "Failed: assert add(1, 2) == 3\nGot: -1\nExpected: 3")
    assert traj.messages[2] == {"role": "assistant", "content": FIX}
    assert traj.messages[3]["content"].endswith("***\nAll 3 tests pass.")
    assert polls == [1, 2]


def test_cancel_stops_before_the_next_turn():
    calls = []
    traj = run_episode(BUGGY, scripted_policy(["ADDL 1 >>># x"] * 9),
                       should_stop=lambda _: len(calls) >= 2, on_turn=lambda t, e: calls.append(t))
    assert traj.cancelled and len(traj.turns) == 2 and not traj.solved


def _queue(commands):
    """A policy that answers each call with the next command, whatever the conversation (a stand-in
    for a sampler's successive draws)."""
    queue = list(commands)
    return lambda messages: queue.pop(0)


def test_redraws_replace_a_command_that_would_revisit_code_and_leave_no_trace():
    # turn 1's first draw rewrites line 2 as it is (a no-op); turn 2's would undo turn 1's edit
    policy = _queue(["REPL 2 >>>    return a - b", "REPW 2 >>>* >>>-", "EXIT"])
    redraw = _queue(["REPW 2 >>>- >>>*", "REPW 2 >>>* >>>+"])
    traj = run_episode(BUGGY, policy, redraws=2, redraw=redraw)
    played = ["REPW 2 >>>- >>>*", "REPW 2 >>>* >>>+", "EXIT"]
    assert [t.text for t in traj.turns] == played
    assert [m["content"] for m in traj.messages if m["role"] == "assistant"] == played  # discarded draws: no trace
    assert traj.redrawn == 2 and traj.solved and traj.reward == 1.0


def test_redraws_play_the_last_draw_when_all_revisit_and_leave_exit_and_errors_alone():
    policy = _queue(["REPL 2 >>>    return a - b", "DELL 9", "EXIT"])
    redraw = _queue(["REPW 2 >>>b >>>b", "REPL 1 >>>def add(a, b):"])
    traj = run_episode(BUGGY, policy, redraws=2, redraw=redraw)
    assert [t.text for t in traj.turns] == ["REPL 1 >>>def add(a, b):", "DELL 9", "EXIT"]
    assert traj.redrawn == 2 and traj.invalid_turns == 1
    # off (the default): the no-op is played as drawn
    traj = run_episode(BUGGY, _queue(["REPL 2 >>>    return a - b", "EXIT"]))
    assert [t.text for t in traj.turns] == ["REPL 2 >>>    return a - b", "EXIT"] and traj.redrawn == 0
    with pytest.raises(ValueError):
        run_episode(BUGGY, _queue(["EXIT"]), redraws=-1)


def test_episode_step_api_and_errors():
    ep = Episode(BUGGY, max_turns=2)
    with pytest.raises(RuntimeError):
        ep.step("EXIT")
    obs = ep.reset()
    assert obs.startswith("L 1 def add(a, b):")
    obs, reward, done, info = ep.step(FIX)
    assert (reward, done, info["solved"], info["tests_passed"], info["tests_total"]) == (1.0, False, True, 3, 3)
    assert info["command"] == Command("REPW", 2, "+", "-")
    _, _, done, info = ep.step("EXIT")
    assert done and info["exited"]
    with pytest.raises(RuntimeError):
        ep.step("EXIT")
    with pytest.raises(ValueError):
        Episode(BUGGY, reward="dense")


def test_replaying_edit_scripts_repairs_real_mbpp_bugs():
    """The oracle edit script of a corruption, played through the loop, solves it."""
    solved = 0
    for task in load_mbpp(["validation"])[:12]:
        from dsl import Verifier
        buggy = demo_bug(task, Verifier())
        if buggy is None:
            continue
        broken = Task(task.id, buggy, task.tests)
        traj = run_episode(broken, scripted_policy(edit_script(buggy, task.code)))
        assert traj.solved and traj.exited and traj.reward == 1.0, task.id
        solved += 1
    assert solved >= 8
