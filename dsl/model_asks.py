"""How the repair engine asks a model for line samples: a state's asks (a forced start such as
`REPL 5 >>>` and how many replies to it) in groups of `line_batch` samples, one model call per group,
which the llama.cpp backend decodes side by side (server/backends/llama_batch.py); a model without
`complete_each` gets one `complete` per ask.
"""
from __future__ import annotations


def complete_each(model, messages: list[dict[str, str]], asks: list[tuple[str, int]],
                  temperature: float) -> list[list[str]]:
    """The model's replies for each (forced start, n) of `asks`: in one call where the model takes
    them together (`complete_each`: the llama.cpp backend decodes them side by side), else one
    `complete` per ask."""
    each = getattr(model, "complete_each", None)
    if each is not None:
        return each(messages, asks, temperature)
    return [model.complete(messages, prefix, n, temperature) for prefix, n in asks]


def line_batches(starts: list[tuple[str, str, int]], size: int) -> list[list[tuple[str, str, int]]]:
    """`starts` (prefix, where, n) in order, in groups of at most `size` samples (an ask larger
    than `size` alone): one model call each, decoded side by side."""
    out: list[list[tuple[str, str, int]]] = []
    for start in starts:
        if out and sum(n for *_, n in out[-1]) + start[2] <= size:
            out[-1].append(start)
        else:
            out.append([start])
    return out
