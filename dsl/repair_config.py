"""The repair engine's settings and outcome (dsl/repair.py runs it): `RepairConfig`, the budgets and
how they are shared between the search and the model, each default measured (docs/results.md);
`RepairResult`, what a Fix found and what it cost.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .episode import Trajectory
from .verifier import VerifyResult

PROPOSERS = ("search", "lines", "episodes")
RESTARTS = ("best", "fresh")  # where model episodes start: the furthest state so far, or the start code


@dataclass
class RepairConfig:
    runs: int = 400  # test runs per fix (the start's run and localization's included)
    seconds: float = 30.0  # wall clock per fix
    proposers: tuple[str, ...] = PROPOSERS
    search_first: int = 300  # single-edit runs before the model gets a turn ...
    search_first_s: float = 8.0  # ... or seconds, whichever comes first
    # then edit chains before the model, until `search_first` runs in all or these seconds: on MBPP the
    # runs bind first (8 ms a run), so what the chains find there does not move with the machine's load
    # (at 2 s, `mbpp/55`'s 3-edit fix at run 262 came at 1.94-2.29 s: found in 2 runs of 4)
    chains_first_s: float = 4.0
    order: str = "family"  # single edits: "family" (each tier's families across all lines) | "line" (line by line)
    top_lines: int = 3  # lines the model rewrites (line proposals)
    add_lines: int = 2  # lines after which the model writes a new line (`ADDL k+1 >>>`: a lost line)
    line_states: int = 6  # chain states, besides the furthest, whose top lines the model rewrites too
    line_samples: int = 4  # rewrites per line
    line_batch: int = 16  # line samples asked of the model in one call (decoded side by side: llama_batch.py)
    free_samples: int = 8  # lines the model rewrites / adds where it chooses (`REPL` / `ADDL` forced), each
    episodes: int = 8  # model episodes at most (the first greedy); loops end early, the wall budget binds
    max_turns: int = 10
    greedy_turns: int = 10  # the greedy episode's turns at most (from the furthest state it fixed some at turns 6-7)
    temperature: float = 0.7
    depth: int = 3  # edits in a chain, at most (best-first search)
    redraws: int = 0  # episodes draw again a command that would revisit code (dsl/episode.py)
    polish_runs: int = 20  # test runs spent shrinking a fix's diff
    stop_at_fix: bool = True  # False: play every episode (trainer eval's pass@k of the model alone)
    restart: str = "best"  # where episodes start: "best" (the furthest state so far) | "fresh" (the start code)

    def check(self) -> None:
        """A ValueError that says which setting makes no sense."""
        unknown = set(self.proposers) - set(PROPOSERS)
        if unknown or not self.proposers:
            raise ValueError(f"unknown proposers {sorted(unknown)}; choose from {', '.join(PROPOSERS)}")
        if self.runs < 1 or self.seconds <= 0 or self.episodes < 1 or self.max_turns < 1 or self.line_batch < 1:
            raise ValueError("runs, seconds, episodes (--k), max_turns and line_batch must be positive")
        if self.restart not in RESTARTS:
            raise ValueError(f"restart must be best or fresh, not {self.restart!r}")


@dataclass
class RepairResult:
    status: str  # fixed | not_fixed | already_passing | cancelled | invalid
    code: str  # the fix (or the start code)
    message: str
    proposer: str = ""  # who found the fix: search | search·N (N edits) | model·line | model·episode
    runs: int = 0
    seconds: float = 0.0
    commands: list[str] = field(default_factory=list)  # the fix as commands on the start code
    first: VerifyResult | None = None
    final: VerifyResult | None = None
    tried: dict[str, int] = field(default_factory=dict)  # test runs per proposer
    rejected: list[tuple[str, list[str]]] = field(default_factory=list)  # (proposer, audit flags)
    ranking: list[tuple[int, float]] = field(default_factory=list)
    episodes: list[Trajectory] = field(default_factory=list)
    at: dict[str, float] = field(default_factory=dict)  # runs/seconds when the fix was found
