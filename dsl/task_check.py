"""The check the repair engine runs for a task given as code and tests (`trainer eval`, the
benches): its tests in a `dsl.Verifier`, with time limits learnt from the start's run. The
language server's check of a workspace is `server/workspace_check.py`."""
from __future__ import annotations

import time

from .tasks import Task
from .verifier import VerifyResult

MIN_RUN_S = 0.02  # the least time a run is given, however close the deadline


def run_limit(limit: float, deadline: float) -> float:
    """Seconds a test run may take: `limit`, or what is left before `deadline` (`time.monotonic()`)
    where that is less. A run begun just before the deadline gets what is left, at least MIN_RUN_S
    (a sandbox run takes a few ms to start): a floor of 0.2 s ran QuixBugs' hanging candidates 0.2 s
    past a fix's end. The engine's checks (this one, the server's WorkspaceCheck) all bound runs so."""
    return max(MIN_RUN_S, min(limit, deadline - time.monotonic()))


class TaskCheck:
    """The check for a task run by a `dsl.Verifier`: its tests, with the task's timeout for the
    first run; after it, `factor` times that run's wall time (at least `floor_s`), or `hung_s`
    when the first run itself timed out (the bug may be the loop): a candidate that loops forever
    must not cost the whole timeout every time. No run outlasts `deadline` (set by the engine)."""

    def __init__(self, task: Task, verifier, floor_s: float = 1.0, factor: float = 5.0, hung_s: float = 1.0):
        self.task, self.verifier = task, verifier
        self.full = task.timeout_s or 10.0
        self.limit: float | None = None
        self.floor_s, self.factor, self.hung_s = floor_s, factor, hung_s
        self.deadline = float("inf")

    def __call__(self, code: str) -> VerifyResult:
        return self.verifier.verify(code, self.task.tests, self._timeout(self.limit or self.full))

    def tests(self, code: str, tests: str) -> VerifyResult:
        """The same code against other tests (localization's single-test runs)."""
        return self.verifier.verify(code, tests, self._timeout(self.limit or self.hung_s))

    def _timeout(self, limit: float) -> float:
        return run_limit(limit, self.deadline)

    def learn(self, first: VerifyResult) -> None:
        """Sets the limit for every run after the start's, from how the start's went."""
        self.limit = min(self.full, self.hung_s if first.timed_out else max(self.floor_s, self.factor * first.wall_s))
