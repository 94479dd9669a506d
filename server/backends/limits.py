"""How long a reply may be, and when a conversation no longer fits: the same rule for every backend."""
from __future__ import annotations


def reply_limit(backend) -> int:
    """The most tokens one reply may take: `max_new_tokens` for a command, four times that for a
    Direct-mode program (a whole function, not one line)."""
    return backend.max_new_tokens if backend.mode == "coe" else 4 * backend.max_new_tokens


def overflows(backend, ids: list[int]) -> bool:
    """A conversation longer than the model's context (less room for the reply) ends the episode:
    the model answers EXIT, and the backend counts it (`overflows`) so evaluations can say so."""
    if backend.context and len(ids) + reply_limit(backend) > backend.context:
        backend.overflows += 1
        return True
    return False
