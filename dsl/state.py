"""The editor state: the code as numbered lines, how commands change it, and how it is rendered.

The rendering is the paper's tool state, and exactly what the model sees each turn:

    L 1 def add(a, b):
    L 2     return a - b
    ***
    <verifier feedback>

`L <n> <line>` per line (no padding, no cursor; an empty line renders as `L <n>`), a line of
`***`, then the feedback. Budgets keep one observation bounded whatever the code does: a code line
is cut at `LINE_BUDGET` characters and the feedback at `FEEDBACK_BUDGET`, each marked with `…`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .commands import Command, split_code

LINE_BUDGET = 300  # characters of one code line shown to the model
FEEDBACK_BUDGET = 1000  # characters of verifier feedback shown to the model
SEPARATOR = "***"


@dataclass(frozen=True)
class ApplyError:
    message: str  # shown to the model; the state is left unchanged

    def __bool__(self) -> bool:
        return False


@dataclass(frozen=True)
class EditorState:
    lines: tuple[str, ...]
    trailing_newline: bool = False  # kept so that to_code() gives back what from_code() got

    @classmethod
    def from_code(cls, code: str) -> "EditorState":
        return cls(*split_code(code))

    def to_code(self) -> str:
        return "\n".join(self.lines) + ("\n" if self.trailing_newline and self.lines else "")

    def apply(self, cmd: Command) -> "EditorState | ApplyError":
        """The state after `cmd`, or an error that names what was wrong; never a partial edit."""
        n, count = cmd.line, len(self.lines)
        if cmd.op == "EXIT":
            return self
        if "\n" in cmd.text or "\r" in cmd.text:
            return ApplyError("The new text must be a single line.")
        if cmd.op == "ADDL":
            if not 1 <= n <= count + 1:
                return ApplyError(f"ADDL {n}: line must be between 1 and {count + 1}.")
            return self._with(self.lines[: n - 1] + (cmd.text,) + self.lines[n - 1 :])
        if not 1 <= n <= count:
            what = "the code is empty" if count == 0 else f"the code has lines 1-{count}"
            return ApplyError(f"{cmd.op} {n}: no such line ({what}).")
        if cmd.op == "DELL":
            return self._with(self.lines[: n - 1] + self.lines[n:])
        if cmd.op == "REPL":
            new_line = cmd.text
        else:  # REPW
            line = self.lines[n - 1]
            if not cmd.old:
                return ApplyError(f"REPW {n}: the old text is empty.")
            if cmd.old not in line:
                return ApplyError(f"REPW {n}: {_clip(cmd.old, 60)!r} is not on line {n}.")
            new_line = line.replace(cmd.old, cmd.text)
        return self._with(self.lines[: n - 1] + (new_line,) + self.lines[n:])

    def _with(self, lines: tuple[str, ...]) -> "EditorState":
        return EditorState(lines, self.trailing_newline)

    def render(self, feedback: str) -> str:
        """The observation: numbered lines, `***`, then the (budgeted) feedback."""
        shown = [f"L {i} {_clip(line, LINE_BUDGET)}" if line else f"L {i}"
                 for i, line in enumerate(self.lines, 1)]
        return "\n".join([*shown, SEPARATOR, _clip(feedback.strip("\n"), FEEDBACK_BUDGET)])


def _clip(text: str, budget: int) -> str:
    return text if len(text) <= budget else text[: budget - 1] + "…"


_ROW = re.compile(r"L ([1-9][0-9]*)(?: (.*))?")


def lines_in_view(observation: str) -> list[str | None] | None:
    """The code lines of the editor state rendered in `observation` (a tool turn as `render`
    wrote it, maybe after the task or an error line), so decoding can check commands against the
    code the model sees; None for a line `render` clipped (its full text is unknown). [] for an
    empty state (a `***` that starts the observation, the code block, or follows one error line),
    so decoding offers only ADDL 1 and EXIT. None when the observation holds no rendered state."""
    rows = observation.split("\n")
    for j, row in enumerate(rows):
        if row != SEPARATOR:
            continue
        last = _ROW.fullmatch(rows[j - 1]) if j else None
        n = int(last.group(1)) if last else 0
        if not n and (j == 0 or rows[j - 1] == "Code:" or (j == 1 and not rows[0].startswith(("Task:", "Tests:")))):
            return []
        if not n or n > j:
            continue
        block = [_ROW.fullmatch(r) for r in rows[j - n: j]]
        if all(m and int(m.group(1)) == i for i, m in enumerate(block, 1)):
            texts = [m.group(2) or "" for m in block]
            return [None if len(t) == LINE_BUDGET and t.endswith("…") else t for t in texts]
    return None
