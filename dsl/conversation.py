"""The one conversation format: what the model is told and shown, turn by turn.

    system     SYSTEM_PROMPT (the DSL templates)
    user       task description (if any), the tests, then the initial tool state
    assistant  one command
    user       the tool state after it (or the error, then the unchanged state)
    assistant  one command ...

Tool states go in `user` messages so that every chat template (SmolLM2's, Llama's, Qwen's) can
carry them. Messages are plain `{"role", "content"}` dicts; turning them into tokens is the job
of the trainer's token format, shared by training and serving.
"""
from __future__ import annotations

from .commands import TEMPLATES
from .tasks import Task

SYSTEM_PROMPT = f"""You repair Python code by editing it, one command per turn.
You see the code as numbered lines (L n), then ***, then the test results.
Commands: {TEMPLATES}
DELL n deletes line n. ADDL n >>>text inserts text as line n. REPL n >>>text replaces line n.
REPW n >>>old >>>new replaces old with new in line n. EXIT ends when the tests pass.
Text after >>> is used as is, indentation included. Answer with the command only."""


def task_message(task: Task, observation: str) -> str:
    parts = []
    if task.description:
        parts.append(f"Task: {task.description.strip()}")
    parts.append(f"Tests:\n{task.tests.strip()}")
    parts.append(f"Code:\n{observation}")
    return "\n\n".join(parts)


def new_conversation(task: Task, observation: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": task_message(task, observation)}]


def error_observation(error: str, state_view: str) -> str:
    """What the model sees after a command that could not be applied: why, then the state."""
    return f"{error}\n{state_view}"
