"""How a backend samples a token (temperature > 0): the `top_k` best tokens, cut to the shortest
head holding `top_p` of their probability, then to those at least `min_p` times as likely as the
best, then drawn at the temperature. That is llama.cpp's order (top-k, top-p, min-p, temperature),
so the llama.cpp backend passes the numbers to llama.cpp and the transformers backend cuts with
`kept_by_cutoffs`: RL's rollouts (transformers) then draw from what evaluation and the language
server (llama.cpp) draw from.

One difference is left on purpose. llama.cpp cuts among the tokens the code grammar allows (its
logits processor leaves only those); transformers cuts first, and the grammar then takes the first
allowed draw. The two agree unless the grammar refuses one of the likeliest tokens. Ranking every
top-k token against the grammar, as llama.cpp's processor does, would cost RL's batched rollouts a
grammar check per candidate per row per token.
"""
from __future__ import annotations

from contextlib import contextmanager

# Candidates ranked against the grammar per token, before the rest of the vocabulary: the best few
# hundred almost always hold one the grammar allows, and sorting the whole vocabulary (49k for
# SmolLM2) took ~30 ms a token, more than a forward pass.
HEAD = 256

# llama-cpp-python's own defaults, which every evaluation of a GGUF used before they were named here
TOP_P = 0.95
MIN_P = 0.05


def checked_cutoffs(top_p: float, min_p: float) -> tuple[float, float]:
    """(top_p, min_p) when they make sense; a ValueError that says which does not."""
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], not {top_p}")
    if not 0.0 <= min_p < 1.0:
        raise ValueError(f"min_p must be in [0, 1), not {min_p}")
    return top_p, min_p


def kept_by_cutoffs(probs: list[float], top_p: float, min_p: float) -> int:
    """How many of `probs` (best first) sampling keeps: the shortest head whose mass reaches `top_p`
    of the whole, then those of it at least `min_p` times the best. Always at least one."""
    total, mass, head = sum(probs), 0.0, 0
    for p in probs:
        head += 1
        mass += p
        if mass >= top_p * total:
            break
    floor = min_p * probs[0] if probs else 0.0
    return max(1, sum(1 for p in probs[:head] if p >= floor))


@contextmanager
def at_temperature(backend, temperature: float | None):
    """`backend.temperature` set to `temperature` (None: left as it is) until the block ends; the
    caller holds the backend's lock, so no other reply sees it."""
    if temperature is None:
        yield
        return
    kept, backend.temperature = backend.temperature, temperature
    try:
        yield
    finally:
        backend.temperature = kept
