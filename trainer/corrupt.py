"""The corruption engine: break a correct program with a few random edits, remembering how to undo them.

Each corruption is one DSL command applied to the editor state, and its inverse is recorded, so a
demonstration is simply the inverses played back in reverse order through a real `dsl` episode
(`trainer/data.py`). Operators, after the paper's recipe (delete / insert / replace a line, change
a token) with the token changes spelled out:

    delete_line     DELL n
    insert_line     ADDL n with a line from another solution, indented like its neighbour
    replace_line    REPL n with a line from another solution, keeping this line's indentation
    operator        + - * / // % swapped among themselves, `and`/`or`
    comparison      < <= > >= == != swapped among themselves
    constant        an integer literal +1 or -1
    swap_variable   one identifier replaced by another identifier of the same program
    misspell        one identifier with a letter dropped, doubled or two letters swapped

Everything is driven by the `random.Random` passed in, so a seed fixes the result.
"""
from __future__ import annotations

import keyword
import random
import re
from dataclasses import dataclass

from dsl import Command, EditorState, line_edit

IDENT = re.compile(r"[A-Za-z_]\w*")
NUMBER = re.compile(r"(?<![\w.])\d+(?![\w.])")
ARITH = ["+", "-", "*", "/", "//", "%"]
COMPARE = ["<", "<=", ">", ">=", "==", "!="]
OPERATORS = ("delete_line", "insert_line", "replace_line", "operator", "comparison", "constant",
             "swap_variable", "misspell")
_BUILTIN_NAMES = {"print", "range", "len", "def", "return", "self", "True", "False", "None"}


@dataclass(frozen=True)
class Corruption:
    operator: str
    command: Command  # what broke the code
    inverse: Command  # what repairs it, applied to the state right after `command`


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _code_lines(state: EditorState, headers: bool = True) -> list[int]:
    """1-based numbers of non-blank lines; without `def`/`class` headers if headers=False
    (deleting or replacing a whole header is not a bug anyone writes)."""
    return [i for i, line in enumerate(state.lines, 1)
            if line.strip() and (headers or not line.lstrip().startswith(("def ", "class ")))]


def _token_spans(line: str, pattern: re.Pattern) -> list[re.Match]:
    # ignore what sits inside string literals: changing text in a message rarely breaks tests
    quoted = [m.span() for m in re.finditer(r"'[^']*'|\"[^\"]*\"", line)]
    return [m for m in pattern.finditer(line) if not any(a <= m.start() < b for a, b in quoted)]


def operator_spans(line: str, ops: list[str]) -> list[tuple[int, int, str]]:
    body = line.split("#", 1)[0]
    out = []
    for m in re.finditer(r"//|<=|>=|==|!=|[+\-*/%<>]", body):
        tok = m.group()
        prev, nxt = body[m.start() - 1: m.start()], body[m.end(): m.end() + 1]
        if tok in ops and prev != "=" and nxt != "=" and not (tok == "*" and nxt == "*") and prev not in "*/<>!=":
            out.append((m.start(), m.end(), tok))
    return out


def _changed_line(state: EditorState, rng: random.Random, operator: str, pool: list[str]) -> tuple[int, str] | None:
    """(line number, new text) for a token-level or line-replacing operator, or None."""
    lines = _code_lines(state, headers=operator != "replace_line")
    if not lines:
        return None
    n = rng.choice(lines)
    line = state.lines[n - 1]
    if operator == "replace_line":
        donor = rng.choice(pool).strip() if pool else ""
        return (n, _indent(line) + donor) if donor and donor != line.strip() else None
    if operator in ("operator", "comparison"):
        ops = ARITH if operator == "operator" else COMPARE
        spans = operator_spans(line, ops)
        if operator == "operator":
            spans += [(m.start(), m.end(), m.group()) for m in re.finditer(r"\b(and|or)\b", line)]
        if not spans:
            return None
        a, b, tok = rng.choice(spans)
        choices = ["and", "or"] if tok in ("and", "or") else ops
        new = rng.choice([o for o in choices if o != tok])
        return n, line[:a] + new + line[b:]
    if operator == "constant":
        spans = _token_spans(line, NUMBER)
        if not spans:
            return None
        m = rng.choice(spans)
        value = int(m.group()) + rng.choice([-1, 1])
        return (n, line[: m.start()] + str(value) + line[m.end():]) if value >= 0 else None
    idents = [m for m in _token_spans(line, IDENT) if not keyword.iskeyword(m.group()) and m.group() not in _BUILTIN_NAMES]
    if not idents:
        return None
    m = rng.choice(idents)
    word = m.group()
    if operator == "swap_variable":
        names = sorted({t for t in IDENT.findall("\n".join(state.lines))
                        if not keyword.iskeyword(t) and t != word and t not in _BUILTIN_NAMES})
        if not names:
            return None
        new = rng.choice(names)
    else:  # misspell
        if len(word) < 3:
            return None
        i = rng.randrange(len(word) - 1)
        new = rng.choice([word[:i] + word[i + 1:], word[:i] + word[i] + word[i:],
                          word[:i] + word[i + 1] + word[i] + word[i + 2:]])
        if new == word:
            return None
    return n, line[: m.start()] + new + line[m.end():]


def corrupt_once(state: EditorState, rng: random.Random, pool: list[str],
                 operators: tuple[str, ...] = OPERATORS) -> tuple[EditorState, Corruption] | None:
    """Apply one random corruption; None when the chosen operator has nothing to work on."""
    operator = rng.choice(operators)
    if operator == "delete_line":
        lines = _code_lines(state, headers=False)
        if len(lines) < 2:
            return None
        n = rng.choice(lines)
        cmd, inv = Command("DELL", n), Command("ADDL", n, state.lines[n - 1])
    elif operator == "insert_line":
        if not pool or not state.lines:
            return None
        n = rng.randint(1, len(state.lines) + 1)
        neighbour = state.lines[n - 1] if n <= len(state.lines) else state.lines[-1]
        text = _indent(neighbour) + rng.choice(pool).strip()
        cmd, inv = Command("ADDL", n, text), Command("DELL", n)
    else:
        change = _changed_line(state, rng, operator, pool)
        if change is None:
            return None
        n, new = change
        old = state.lines[n - 1]
        if new == old or "\n" in new or "\r" in new:
            return None
        cmd, inv = line_edit(n, old, new), line_edit(n, new, old)
    after = state.apply(cmd)
    if not isinstance(after, EditorState) or not isinstance(after.apply(inv), EditorState) \
            or after.apply(inv).lines != state.lines:
        return None  # an edit we could not undo exactly is no use for a demonstration
    return after, Corruption(operator, cmd, inv)


def corrupt(code: str, rng: random.Random, n_edits: int, pool: list[str],
            operators: tuple[str, ...] = OPERATORS, max_tries: int = 50) -> tuple[str, list[Corruption]] | None:
    """`code` with `n_edits` corruptions applied in sequence, and those corruptions; or None."""
    state = EditorState.from_code(code)
    applied: list[Corruption] = []
    tries = 0
    while len(applied) < n_edits and tries < max_tries:
        tries += 1
        step = corrupt_once(state, rng, pool, operators)
        if step is not None:
            state, c = step
            applied.append(c)
    if len(applied) < n_edits or state.to_code() == code:
        return None
    return state.to_code(), applied


def repair_commands(corruptions: list[Corruption]) -> list[Command]:
    """The fix: the inverses in reverse order, then EXIT."""
    return [c.inverse for c in reversed(corruptions)] + [Command("EXIT")]
