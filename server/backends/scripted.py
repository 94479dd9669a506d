"""A backend that is not a model, for deterministic tests and demos (`model = "scripted:FILE"`)."""
from __future__ import annotations

from pathlib import Path

from .model_files import ModelError


class ScriptedBackend:
    """Not a model: plays the commands of a file (one per line) in every episode, in order, then
    EXIT. For deterministic tests and demos of the server and `coedit fix` (`model = "scripted:FILE"`)."""

    context = 0
    overflows = 0

    def __init__(self, path: str | Path, **_options):
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: no such script")
        self.commands = [c for c in path.read_text().splitlines() if c.strip()]
        self.temperature = 0.0
        self.generated_tokens = 0

    def __call__(self, messages: list[dict[str, str]], temperature: float | None = None) -> str:
        turn = sum(m["role"] == "assistant" for m in messages)
        return self.commands[turn] if turn < len(self.commands) else "EXIT"

    def complete(self, messages: list[dict[str, str]], prefix: str, n: int, temperature: float = 0.7) -> list[str]:
        """The file's commands that start with `prefix` (line proposals), at most n."""
        return [c for c in self.commands if c.startswith(prefix)][:n]

    def score(self, messages: list[dict[str, str]], replies: list[str]) -> list[list[float]]:
        """Prefers the file's commands: log-probability 0 for a reply the file holds, -1 for any other."""
        return [[0.0 if r in self.commands else -1.0] for r in replies]
