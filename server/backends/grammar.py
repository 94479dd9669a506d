"""The command grammar as decoding enforces it, the same for both backends (server/backends/).

"code" (the default) lets a model write only commands that apply to the code in view (`dsl.can_extend`
against `dsl.lines_in_view`); "syntax" any well-formed command (`dsl.GRAMMAR_GBNF`, which llama.cpp
enforces itself when it cannot read the code); "off" nothing.
"""
from __future__ import annotations

from itertools import islice

from dsl import can_end, can_extend


def grammar_allows(decode, out: list[int], text: str, tok: int, ends: set[int],
                   lines: list[str | None] | None) -> bool:
    """Whether the grammar lets the reply `out` (decoding to `text`) go on with `tok`: an end-of-turn
    token where the text is a command (`dsl.can_end`), any other token where the text grows and
    stays a command's prefix (`dsl.can_extend`); against the code's `lines` when given. Both
    backends decide with this, each over its own ranking of tokens."""
    if tok in ends:
        return can_end(text, lines)
    piece = decode(out + [tok])
    return piece != text and can_extend(piece, lines)


def best_allowed(scores, wanted: int, allowed, head: int) -> list[int]:
    """Up to `wanted` tokens that `allowed(tok)` lets through, best-scored first. The `head` best
    are ranked first (sorting a whole vocabulary took longer than a forward pass); the rest of the
    ranking only when none of those is allowed. `scores` is a numpy vector of logits."""
    import numpy as np
    head = min(head, scores.size)
    top = np.argpartition(-scores, head - 1)[:head]
    ranked = top[np.argsort(-scores[top], kind="stable")].tolist()
    keep = list(islice((t for t in ranked if allowed(t)), wanted))  # stop at the first `wanted`
    if not keep:
        rest = np.argsort(-scores, kind="stable").tolist()[head:]
        keep = list(islice((t for t in rest if allowed(t)), wanted))
    return keep


GRAMMARS = ("code", "syntax", "off")


def grammar_mode(grammar: bool | str) -> str:
    """One of GRAMMARS. "code" (True, the default): only commands that apply to the code in view
    (line numbers in range, a REPW's old text on its line); "syntax": any well-formed command;
    "off" (False): unconstrained."""
    if isinstance(grammar, bool):
        return "code" if grammar else "off"
    if grammar not in GRAMMARS:
        raise ValueError(f"grammar must be one of {', '.join(GRAMMARS)}, not {grammar!r}")
    return grammar


def canonical_gbnf(gbnf: str) -> str:
    """The grammar for decoding: the canonical spelling only (no leading blanks, `### ` or
    trailing newlines), so the end of turn comes right after the command, as `can_extend` has it."""
    return gbnf.replace('root ::= [ \\t\\r\\n]* "### "? command [\\r\\n]*', "root ::= command") \
               .replace('dell ::= "DELL " num [ \\t]*', 'dell ::= "DELL " num') \
               .replace('exit ::= "EXIT" [ \\t]*', 'exit ::= "EXIT"')
