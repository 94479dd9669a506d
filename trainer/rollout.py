"""RL rollouts: one `dsl` episode recorded as the token ids the model saw and sampled.

`rollout(task, sampler, ...)` drives `dsl.run_episode` (coedit's one agent loop) with a policy that
samples from the model being trained, and appends ids turn by turn — nothing is re-tokenised, so
the log-probs GRPO computes are of exactly the tokens that were sampled:

    prompt_ids      system + first tool state + assistant header       (TokenFormat.prompt)
    completion_ids  reply 1 + stop | tool turn | reply 2 + stop | ... | reply n + stop
    env_mask        1 on the sampled replies and their stop tokens, 0 on the tool turns
                    (a tool turn is TokenFormat.tool_turn: end of message, tool state, next header)

Every episode ends on a reply's stop token. The token budget is enforced here: when the next tool
turn plus a reply would not fit the context, the episode ends before it (counted `over_budget`),
scored as ending without EXIT. A reply cut off at `max_new_tokens` gets its stop token appended
with mask 0 — the model did not sample it, so it is not trained on.

Rewards are the episode's per-turn rewards (`dsl/episode.py`). A solved episode that the audit
(`dsl/audit.py`) flags as gaming the tests loses its solve reward.

`turn_advantages(group)` is GRPO with per-turn reward normalisation (the paper's RL; the process-
supervision form of DeepSeekMath's GRPO): the per-turn rewards of all rollouts in a group are
normalised together, r~ = (r - mean) / (std + eps), and a turn's tokens get the sum of the
normalised rewards from that turn to the end of its episode. A group whose turn rewards are all
equal gets zero advantages; one whose episodes have equal returns can still rank turns within them
(e.g. the turn that failed to EXIT is pushed down). Its catch: a turn's advantage also counts the
turns after it, each (0 - mean) / std when the turn scores 0, so it grows or shrinks with the
episode's length, whatever the episode's outcome (`bench/advantage_signs.py` measures how often
that turns the sign against the outcome).

`episode_advantages(group)` is outcome GRPO (`--advantage episode`): each episode's return,
normalised over its group, on every one of its turns, so that a turn is pushed up exactly when
its episode did better than the group's mean.

`rollouts(tasks, backend, rows=N)` plays many episodes with their replies decoded together
(`server.backends.Lockstep`: one forward pass per token for all rows; meant for a GPU).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

from dsl import Task, Verifier, lines_in_view
from dsl.audit import audit
from dsl.episode import NO_EXIT_PENALTY, SOLVE_REWARD, run_episode
from server.backends import Lockstep


@dataclass
class Rollout:
    task_id: str
    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    turn_spans: list[tuple[int, int]] = field(default_factory=list)  # [start, end) of each reply in completion_ids
    turn_rewards: list[float] = field(default_factory=list)
    solved: bool = False
    exited: bool = False
    invalid_turns: int = 0
    over_budget: bool = False
    hacks: list[str] = field(default_factory=list)
    final_code: str = ""

    @property
    def reward(self) -> float:
        return sum(self.turn_rewards)


def rollout(task: Task, sampler, *, verifier: Verifier | None = None, max_turns: int = 10,
            reward: str = "paper", context: int = 0) -> Rollout:
    """One episode of `sampler` (a `TransformersBackend`: `.fmt`, `.generate_ids`, `.tok`,
    `.max_new_tokens`) on `task`, as token ids. `context`: the token budget (0: the sampler's)."""
    fmt = sampler.fmt
    stop = fmt.stop_ids[0]
    budget = context or sampler.context or 2048
    rec: Rollout | None = None
    pending: list[int] = []  # the tool turn waiting to be appended before the next reply

    def policy(messages: list[dict[str, str]]) -> str:
        nonlocal rec, pending
        if rec is None:
            rec = Rollout(task.id, fmt.prompt(messages))
        rec.completion_ids += pending
        rec.env_mask += [0] * len(pending)
        pending = []
        out, stopped = sampler.generate_ids(rec.prompt_ids + rec.completion_ids, lines_in_view(messages[-1]["content"]))
        start = len(rec.completion_ids)
        rec.completion_ids += out + [stop]
        rec.env_mask += [1] * len(out) + [1 if stopped else 0]
        rec.turn_spans.append((start, len(rec.completion_ids)))
        return sampler.tok.decode(out, skip_special_tokens=True)

    def on_turn(turn, episode) -> None:
        nonlocal pending
        if episode.done:
            return
        pending = fmt.tool_turn(turn.observation)
        used = len(rec.prompt_ids) + len(rec.completion_ids) + len(pending)
        if used + sampler.max_new_tokens + 1 > budget:
            rec.over_budget = True

    traj = run_episode(task, policy, verifier=verifier, max_turns=max_turns, reward=reward,
                       on_turn=on_turn, should_stop=lambda _: rec is not None and rec.over_budget)
    # run_episode always plays a first turn, so `rec` exists; the budget is checked from the
    # second turn on (a first tool state never nears the context for MBPP-size tasks)
    rec.turn_rewards = [t.reward for t in traj.turns]
    if rec.over_budget and rec.turn_rewards:
        rec.turn_rewards[-1] += NO_EXIT_PENALTY  # ended without EXIT, as at the turn cap
    rec.solved, rec.exited, rec.final_code = traj.solved, traj.exited, traj.final_code
    rec.invalid_turns = traj.invalid_turns
    if any(t.solved for t in traj.turns):
        rec.hacks = audit(task.code, traj.final_code, task.tests)
        if rec.hacks:  # no reward for passing by gaming the tests
            first = next(i for i, t in enumerate(traj.turns) if t.solved)
            rec.turn_rewards[first] -= SOLVE_REWARD
    return rec


def _normalised(values: list[float], eps: float) -> list[float]:
    """(v - mean) / (std + eps) over `values`; all zeros when they are all equal (no signal)."""
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    if std < 1e-8:
        return [0.0] * len(values)
    return [(v - mean) / (std + eps) for v in values]


def turn_advantages(group: list[list[float]], eps: float = 1e-4) -> list[list[float]]:
    """Per-turn advantages for one group (each item: a rollout's per-turn rewards)."""
    flat = [r for rewards in group for r in rewards]
    if not flat:
        return [[] for _ in group]
    norm = iter(_normalised(flat, eps))
    out = []
    for rewards in group:
        to_go, acc = [], 0.0
        for r in reversed([next(norm) for _ in rewards]):
            acc += r
            to_go.append(acc)
        out.append(to_go[::-1])
    return out


def episode_advantages(group: list[list[float]], eps: float = 1e-4) -> list[list[float]]:
    """Per-turn advantages for one group: every turn gets its episode's normalised return."""
    if not group:
        return []
    returns = _normalised([sum(rewards) for rewards in group], eps)
    return [[ret] * len(rewards) for ret, rewards in zip(returns, group)]


ADVANTAGES = {"turn": turn_advantages, "episode": episode_advantages}


def token_advantages(rollouts_spans: list[list[tuple[int, int]]], advantages: list[list[float]],
                     width: int) -> list[list[float]]:
    """(batch, width) advantages: each reply's tokens carry its turn's advantage; tool tokens 0."""
    rows = []
    for spans, adv in zip(rollouts_spans, advantages):
        row = [0.0] * width
        for (start, end), a in zip(spans, adv):
            for i in range(start, min(end, width)):
                row[i] = a
        rows.append(row)
    return rows


def rollouts(tasks: list[Task], backend, *, rows: int = 8, seed: int | None = None,
             verifier: Verifier | None = None, **options) -> list[Rollout]:
    """`rollout(task, ...)` for every task (`options` go to it), their replies decoded together,
    `rows` episodes at a time (one thread per episode, the tests of one running while the others
    wait); `rows=0`: one after another from `backend` itself (its own random stream; `seed`
    unused). Episode i samples from the same stream whatever `rows` is; `seed` None draws the
    batch's seed from `backend`'s stream (only when batched, so `rows=0` plays as it always did)."""
    if rows < 0:
        raise ValueError(f"rows must be 0 (one episode at a time) or more, not {rows}")
    if rows == 0:
        return [rollout(t, backend, verifier=verifier, **options) for t in tasks]
    # the rows' caches and, in a long prefill, the attention scores grow with the batch: 25
    # held-out episodes of SmolLM2 at once peaked at 18 GB on the CPU
    if seed is None:
        seed = backend.rng.randrange(2**31)
    done = []
    for start in range(0, len(tasks), rows):
        done += _together(tasks[start:start + rows], backend, seed, start, verifier, options)
    return done


def _together(tasks: list[Task], backend, seed: int, first: int, verifier, options: dict) -> list[Rollout]:
    lockstep = Lockstep(backend, len(tasks), seed, first)
    done: list[Rollout | None] = [None] * len(tasks)
    errors: list[BaseException] = []

    def play(i: int) -> None:
        try:
            done[i] = rollout(tasks[i], lockstep.rows[i], verifier=verifier, **options)
        except BaseException as e:  # noqa: BLE001 - re-raised below, in the caller's thread
            errors.append(e)
        finally:
            lockstep.leave(i)

    threads = [threading.Thread(target=play, args=(i,), daemon=True) for i in range(len(tasks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return done
