"""Restarts from the furthest state: where the next of k episodes begins.

Independent episodes (best-of-k) each start from the task's code, so an episode that fixed two of
three bugs and then lost its way leaves nothing to the next. With `restart="best"` the next episode
starts instead from the best code any earlier episode reached, with a fresh conversation: the
model sees that code and its test feedback, as it saw the buggy code at the start (a partly fixed
program is just another buggy one to it), and none of the earlier episode's loops.

"Best" (fixed before any measurement, kept coarse on purpose): more tests passing, then code that
runs (status "ok") over code that does not (a syntax error, a crash on definition); a state must be
strictly better than the task's code to be a start, and among equals the first reached wins (the
fewest edits away from the original). With no such state, the episode starts from the task's code,
exactly as best-of-k does.
"""
from __future__ import annotations

from dataclasses import replace

from .episode import Trajectory
from .tasks import Task

RESTARTS = ("fresh", "best")


def progress(tests_passed: int, code_status: str) -> tuple[int, int]:
    """How far a state is from a fix: compare these tuples, larger is further."""
    return (tests_passed, code_status == "ok")


def restart_task(task: Task, episodes: list[Trajectory]) -> Task:
    """`task` with its code replaced by the furthest state of `episodes` (module docstring), or
    `task` itself when no state got further than its code."""
    if not episodes:
        return task
    best_code, best = task.code, progress(episodes[0].initial_tests_passed, episodes[0].initial_status)
    for turn in (t for traj in episodes for t in traj.turns):
        here = progress(turn.tests_passed, turn.code_status)
        if turn.valid and turn.code and not turn.solved and here > best:  # a passing state is a fix, not a start
            best_code, best = turn.code, here
    return task if best_code == task.code else replace(task, code=best_code)
