"""Edits that make code with a syntax error compile, found without running a single test.

A stray line pasted into a block (`if x:` with no body, a line indented one level too deep) breaks
the whole program, and one edit rarely mends it: the next broken line is the next error. But
whether code compiles, and where it stops compiling, costs microseconds to ask Python. So this is
a breadth-first search over line edits near the error, fewest edits first, where a state that
still does not compile is kept only if its error moved further down the code:

    DELL n                     the line is junk
    REPL n >>>(re-indented)    the line at its neighbour's indentation, one level in, or one out
    ADDL n+1 >>>pass           a block header left without a body

`syntax_fixes(code)` returns the compiling programs with the commands that make them, in that
order; the repair engine runs their tests like any other candidate.
"""
from __future__ import annotations

import warnings

from .commands import Command
from .mutate import indent_of as _indent
from .state import EditorState

WINDOW = (-2, -1, 0, 1)  # lines around the error line that edits touch


def error_line(code: str) -> int:
    """0 when `code` compiles, else the line of its first syntax error (at least 1)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            compile(code, "<candidate>", "exec")
            return 0
        except SyntaxError as e:
            return max(1, e.lineno or 1)
        except (ValueError, RecursionError, MemoryError):
            return 1


def _edits(state: EditorState, at: int):
    unit = "\t" if any(x.startswith("\t") for x in state.lines) else "    "
    for n in sorted({at + d for d in WINDOW if 1 <= at + d <= len(state.lines)}):
        line = state.lines[n - 1]
        if not line.strip():
            continue
        yield Command("DELL", n)
        body = line.lstrip()
        prev = next((state.lines[i] for i in range(n - 2, -1, -1) if state.lines[i].strip()), "")
        indents = {_indent(prev), _indent(prev) + unit, _indent(line)[: -len(unit)] if _indent(line) else ""}
        for indent in sorted(indents - {_indent(line)}):
            yield Command("REPL", n, indent + body)
        if body.rstrip().endswith(":"):
            yield Command("ADDL", n + 1, _indent(line) + unit + "pass")


def syntax_fixes(code: str, limit: int = 20, depth: int = 3, width: int = 30) -> list[tuple[str, tuple[str, ...]]]:
    """Up to `limit` compiling variants of `code` (with their commands), fewest edits first; at each
    depth only the `width` states whose error lies furthest down are expanded."""
    at = error_line(code)
    if not at:
        return []
    found: list[tuple[str, tuple[str, ...]]] = []
    seen = {code}
    level = [(at, EditorState.from_code(code), ())]
    for _ in range(depth):
        nxt = []
        for at, state, cmds in level:
            for cmd in _edits(state, at):
                new = state.apply(cmd)
                if not isinstance(new, EditorState) or new.to_code() in seen:
                    continue
                seen.add(new.to_code())
                where = error_line(new.to_code())
                if where == 0:
                    found.append((new.to_code(), cmds + (str(cmd),)))
                    if len(found) >= limit:
                        return found
                elif where > at or (where == at and cmd.op == "DELL"):
                    nxt.append((where, new, cmds + (str(cmd),)))
        level = sorted(nxt, key=lambda s: -s[0])[:width]
    return found
