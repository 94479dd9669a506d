"""Episodes and the one rollout loop.

`Episode(task)`: `reset()` gives the first observation; `step(text)` applies one model turn and
returns `(observation, reward, done, info)`. `run_episode(task, policy)` drives an episode with any
policy (a callable from the conversation so far to the next command text) and returns a
`Trajectory`. Training rollouts, evaluation, `coedit fix` and the language server all call
`run_episode`; they differ only in the policy and the callbacks (progress, cancellation).

Rewards (`reward="paper"`, the default, after Rainone et al. 2025):
    +1.0  on the turn whose edit first makes every test pass
    -0.5  for a malformed command (does not parse, or cannot be applied: no such line, ...)
    -0.5  added on the last turn when the episode hits the turn cap without EXIT
     0.0  otherwise; also when the starting code already passes (there is nothing to solve)
`reward="partial"` adds, on each turn, the change in the share of tests passing (so a turn taking
2/4 -> 3/4 earns +0.25, a regression the same negative), for when groups would otherwise get no
signal. An episode ends on EXIT, at `max_turns`, or (if `stop_when_solved`) once the tests pass.

Redraws (`redraws=N`, off by default): a small model in a loop re-plays an edit it already made, or
undoes one, and burns a turn on code the episode has already seen (a third of the SFT model's
edits on MBPP-test did). With `redraws=N`, a command whose edit would bring back code the episode
already had (its start included, so a no-op too) is drawn again, up to N times, from `redraw`
(default: the policy itself, which must sample for this to help); discarded draws never enter the
conversation and run no tests. If every draw revisits, the last one is played. RL rollouts leave
this off: their gradient must be of the policy's own, unfiltered samples.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from .commands import Command, ParseError, parse
from .conversation import error_observation, new_conversation
from .state import ApplyError, EditorState
from .tasks import Task
from .verifier import Verifier, VerifyResult

SOLVE_REWARD = 1.0
INVALID_PENALTY = -0.5
NO_EXIT_PENALTY = -0.5
DEFAULT_MAX_TURNS = 10

Policy = Callable[[list[dict[str, str]]], str]
Check = Callable[[str], VerifyResult]


class OutOfTime(Exception):
    """A policy that was given a `deadline` (a `time.monotonic()` value: the repair engine sets the
    fix's end there) reached it before its reply was whole. The reply is dropped, not cut short:
    half a line would be an edit nobody asked for."""


_default_verifier: Verifier | None = None


def default_verifier() -> Verifier:
    """One warm verifier per process, shared by every episode that is not given one."""
    global _default_verifier
    if _default_verifier is None:
        _default_verifier = Verifier()
    return _default_verifier


@dataclass
class Turn:
    text: str  # what the policy produced
    command: Command | None  # None when it did not parse
    valid: bool  # parsed and applied
    error: str  # why not valid, else ""
    observation: str
    reward: float
    tests_passed: int
    tests_total: int
    solved: bool  # the code after this turn passes
    seconds: float = 0.0  # policy + tool time for this turn
    code: str = ""  # the code after this turn
    code_status: str = ""  # the verifier's code_status for it (ok | syntax | error | ...)


@dataclass
class Trajectory:
    task_id: str
    messages: list[dict[str, str]]
    turns: list[Turn] = field(default_factory=list)
    initial_solved: bool = False
    initial_tests_passed: int = 0  # of the starting code
    initial_status: str = "ok"  # the verifier's code_status of the starting code
    final_code: str = ""
    solved: bool = False  # the final code passes every test
    exited: bool = False  # the policy ended with EXIT
    cancelled: bool = False
    reward: float = 0.0  # sum over turns
    redrawn: int = 0  # draws discarded because their edit revisited code (see `redraws`)

    @property
    def invalid_turns(self) -> int:
        return sum(not t.valid for t in self.turns)


class Episode:
    def __init__(self, task: Task, *, verifier: Verifier | None = None, check: Check | None = None,
                 max_turns: int = DEFAULT_MAX_TURNS, reward: str = "paper", stop_when_solved: bool = False):
        if reward not in ("paper", "partial"):
            raise ValueError(f"reward must be 'paper' or 'partial', not {reward!r}")
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        self.task = task
        self.max_turns = max_turns
        self.reward_mode = reward
        self.stop_when_solved = stop_when_solved
        if check is None:
            v = verifier or default_verifier()
            check = lambda code: v.verify(code, task.tests, task.timeout_s)  # noqa: E731
        self._check = check
        self.state = EditorState.from_code(task.code)
        self.result: VerifyResult | None = None
        self.turn = 0
        self.done = False
        self.ever_solved = False

    def reset(self) -> str:
        self.state = EditorState.from_code(self.task.code)
        self.result = self._check(self.state.to_code())
        self.turn, self.done = 0, False
        self.ever_solved = self.result.passed  # an already-passing start earns no solve reward
        return self.view()

    def view(self) -> str:
        assert self.result is not None, "call reset() first"
        return self.state.render(self.result.feedback)

    def preview(self, text: str) -> str | None:
        """The code `text` would leave, without running the tests; None for EXIT or an invalid command."""
        cmd = parse(text)
        if isinstance(cmd, ParseError) or cmd.op == "EXIT":
            return None
        new = self.state.apply(cmd)
        return None if isinstance(new, ApplyError) else new.to_code()

    def step(self, text: str) -> tuple[str, float, bool, dict]:
        if self.result is None:
            raise RuntimeError("call reset() before step()")
        if self.done:
            raise RuntimeError("the episode is over")
        self.turn += 1
        before = self.result
        cmd = parse(text)
        reward, error = 0.0, ""
        if isinstance(cmd, ParseError):
            error = cmd.message
        elif cmd.op != "EXIT":
            new = self.state.apply(cmd)
            if isinstance(new, ApplyError):
                error = new.message
            else:
                self.state = new
                self.result = self._check(new.to_code())
        valid = not error
        if not valid:
            reward += INVALID_PENALTY
        if self.result.passed and not self.ever_solved:
            reward += SOLVE_REWARD
            self.ever_solved = True
        if self.reward_mode == "partial" and before.tests_total:
            reward += (self.result.tests_passed - before.tests_passed) / before.tests_total
        exited = isinstance(cmd, Command) and cmd.op == "EXIT"
        self.done = exited or self.turn >= self.max_turns or (self.stop_when_solved and self.result.passed)
        if self.done and not exited and not (self.stop_when_solved and self.result.passed):
            reward += NO_EXIT_PENALTY
        obs = self.view() if valid else error_observation(error, self.view())
        info = {"command": cmd if isinstance(cmd, Command) else None, "valid": valid, "error": error,
                "tests_passed": self.result.tests_passed, "tests_total": self.result.tests_total,
                "solved": self.result.passed, "exited": exited, "turn": self.turn}
        return obs, reward, self.done, info


def run_episode(task: Task, policy: Policy, *, verifier: Verifier | None = None, check: Check | None = None,
                max_turns: int = DEFAULT_MAX_TURNS, reward: str = "paper", stop_when_solved: bool = False,
                on_turn: Callable[[Turn, "Episode"], None] | None = None,
                should_stop: Callable[[list[dict[str, str]]], bool] | None = None, redraws: int = 0,
                redraw: Policy | None = None) -> Trajectory:
    """Run one episode of `policy` on `task`; the only agent loop in coedit.

    `on_turn` is called after every turn (progress, logging); `should_stop(messages)` is polled before
    every turn with the conversation that turn's reply would read (a caller can price the read) and
    ends the episode early with `cancelled=True` (no reward for the unplayed turns).
    `redraws`/`redraw`: draw again a command that would revisit code (module docstring).
    """
    if redraws < 0:
        raise ValueError("redraws must be 0 or more")
    ep = Episode(task, verifier=verifier, check=check, max_turns=max_turns, reward=reward,
                 stop_when_solved=stop_when_solved)
    first = ep.reset()
    messages = new_conversation(task, first)
    traj = Trajectory(task.id, messages, initial_solved=ep.ever_solved, initial_tests_passed=ep.result.tests_passed,
                      initial_status=ep.result.code_status)
    seen = {ep.state.to_code()}
    while not ep.done:
        if should_stop is not None and should_stop(messages):
            traj.cancelled = True
            break
        t0 = time.monotonic()
        text = policy(messages)
        for _ in range(redraws):
            if ep.preview(text) not in seen:
                break
            text = (redraw or policy)(messages)
            traj.redrawn += 1
        obs, r, _, info = ep.step(text)
        code = ep.state.to_code()
        seen.add(code)
        messages.append({"role": "assistant", "content": text})
        messages.append({"role": "user", "content": obs})
        turn = Turn(text, info["command"], info["valid"], info["error"], obs, r, info["tests_passed"],
                    info["tests_total"], info["solved"], time.monotonic() - t0, code, ep.result.code_status)
        traj.turns.append(turn)
        traj.reward += r
        traj.exited = info["exited"]
        if on_turn is not None:
            on_turn(turn, ep)
    traj.final_code = ep.state.to_code()
    traj.solved = bool(ep.result and ep.result.passed)
    return traj


def scripted_policy(commands: list[str | Command]) -> Policy:
    """A policy that plays fixed commands in order (then EXIT): demos, tests, replaying data."""
    queue = [str(c) for c in commands]

    def policy(messages: list[dict[str, str]]) -> str:
        return queue.pop(0) if queue else "EXIT"
    return policy
