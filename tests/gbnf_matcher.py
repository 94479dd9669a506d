"""A small, independent GBNF interpreter: parse a grammar, decide membership of whole strings.

Written from the GBNF description in llama.cpp's grammars/README.md, not from dsl/commands.py, so
that the property test "parser and grammar accept the same language" compares two independent
implementations. Supported subset (anything else raises `GrammarError`):

    rule       name ::= alternatives          (name: letters, digits, '-'; `root` is the start)
    literal    "..."                           escapes \\t \\r \\n \\\\ \\" \\[ \\] \\xHH \\uHHHH \\UHHHHHHHH
    class      [abc] [a-z] [^...]              same escapes; '^' first negates; x-y is a range
    grouping   ( alternatives )
    choice     a | b
    postfix    x?  x*  x+
    comments   # to end of line

As in llama.cpp, a rule ends at a newline unless the newline is inside parentheses or follows `|`
or `::=`. Terminals match single Unicode code points (Python `str` characters). A string is in the
language when some derivation of `root` consumes all of it: the matcher computes, memoised per
(expression, position), the set of positions where an expression can end, so ambiguity and
backtracking are handled exhaustively. Left recursion raises instead of looping.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

__all__ = ["GrammarError", "Grammar", "parse_grammar", "matches"]


class GrammarError(ValueError):
    """The grammar text is outside the supported subset, or is malformed."""


# ---------------------------------------------------------------- syntax tree
# Nodes are tuples (kind, ...) plus a per-grammar integer id used for memoisation:
#   ("lit", id, text)
#   ("cls", id, negated, ((lo, hi), ...))     code point ranges, inclusive
#   ("ref", id, name)
#   ("seq", id, (node, ...))
#   ("alt", id, (node, ...))
#   ("opt" | "star" | "plus", id, node)

_ESCAPES = {"t": "\t", "r": "\r", "n": "\n", "\\": "\\", '"': '"', "[": "[", "]": "]"}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}


def _is_name_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "-")


@dataclass
class _Parser:
    src: str
    pos: int = 0
    next_id: int = 0
    rules: dict = field(default_factory=dict)

    # -- helpers
    def error(self, what: str) -> GrammarError:
        line = self.src.count("\n", 0, self.pos) + 1
        return GrammarError(f"{what} at line {line}, offset {self.pos}: {self.src[self.pos:self.pos + 20]!r}")

    def node(self, kind: str, *payload) -> tuple:
        self.next_id += 1
        return (kind, self.next_id, *payload)

    def peek(self, k: int = 0) -> str:
        i = self.pos + k
        return self.src[i] if i < len(self.src) else ""

    def skip_space(self, newline_ok: bool) -> None:
        """Skip blanks and comments; newlines only when `newline_ok`."""
        while self.pos < len(self.src):
            c = self.src[self.pos]
            if c in " \t":
                self.pos += 1
            elif c == "#":
                while self.pos < len(self.src) and self.src[self.pos] not in "\r\n":
                    self.pos += 1
            elif c in "\r\n" and newline_ok:
                self.pos += 1
            else:
                return

    def name(self) -> str:
        start = self.pos
        while self.pos < len(self.src) and _is_name_char(self.src[self.pos]):
            self.pos += 1
        if self.pos == start:
            raise self.error("expected a rule name")
        return self.src[start:self.pos]

    def char(self) -> str:
        """One (possibly escaped) character inside a literal or class."""
        c = self.peek()
        if c == "":
            raise self.error("unexpected end of grammar")
        if c != "\\":
            self.pos += 1
            return c
        e = self.peek(1)
        if e in _ESCAPES:
            self.pos += 2
            return _ESCAPES[e]
        if e in _HEX_ESCAPES:
            width = _HEX_ESCAPES[e]
            digits = self.src[self.pos + 2:self.pos + 2 + width]
            if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise self.error(f"bad \\{e} escape")
            self.pos += 2 + width
            cp = int(digits, 16)
            if cp > 0x10FFFF:
                raise self.error("code point out of range")
            return chr(cp)
        raise self.error(f"unsupported escape \\{e}")

    # -- grammar structure
    def grammar(self) -> dict:
        self.skip_space(newline_ok=True)
        while self.pos < len(self.src):
            name = self.name()
            self.skip_space(newline_ok=False)
            if not self.src.startswith("::=", self.pos):
                raise self.error("expected '::='")
            self.pos += 3
            self.skip_space(newline_ok=True)
            body = self.alternatives(nested=False)
            if name in self.rules:
                raise self.error(f"rule {name!r} defined twice")
            self.rules[name] = body
            # a rule ends at a newline or at the end of the text
            if self.peek() == "\r":
                self.pos += 1
            if self.peek() == "\n":
                self.pos += 1
            elif self.pos < len(self.src):
                raise self.error("expected end of rule")
            self.skip_space(newline_ok=True)
        if "root" not in self.rules:
            raise GrammarError("grammar has no 'root' rule")
        for kind_name in self._refs(self.rules.values()):
            if kind_name not in self.rules:
                raise GrammarError(f"undefined rule {kind_name!r}")
        return self.rules

    def _refs(self, nodes) -> set:
        out: set = set()
        stack = list(nodes)
        while stack:
            n = stack.pop()
            kind = n[0]
            if kind == "ref":
                out.add(n[2])
            elif kind in ("seq", "alt"):
                stack.extend(n[2])
            elif kind in ("opt", "star", "plus"):
                stack.append(n[2])
        return out

    def alternatives(self, nested: bool) -> tuple:
        options = [self.sequence(nested)]
        while self.peek() == "|":
            self.pos += 1
            self.skip_space(newline_ok=True)
            options.append(self.sequence(nested))
        return options[0] if len(options) == 1 else self.node("alt", tuple(options))

    def sequence(self, nested: bool) -> tuple:
        items = []
        while True:
            c = self.peek()
            if c == "" or c in "|)\r\n":
                break
            if c == '"':
                item = self.literal()
            elif c == "[":
                item = self.char_class()
            elif c == "(":
                self.pos += 1
                self.skip_space(newline_ok=True)
                item = self.alternatives(nested=True)
                if self.peek() != ")":
                    raise self.error("expected ')'")
                self.pos += 1
            elif _is_name_char(c):
                start = self.pos
                name = self.name()
                save = self.pos
                self.skip_space(newline_ok=False)
                if self.src.startswith("::=", self.pos):
                    self.pos = start
                    raise self.error("rule definition inside a rule (missing newline?)")
                self.pos = save
                item = self.node("ref", name)
            else:
                raise self.error(f"unsupported syntax {c!r}")
            # postfix operators; `{m,n}` repetition is outside the supported subset
            c = self.peek()
            if c in ("?", "*", "+"):
                self.pos += 1
                item = self.node({"?": "opt", "*": "star", "+": "plus"}[c], item)
                if self.peek() in ("?", "*", "+", "{"):
                    raise self.error("stacked repetition operators")
            elif c == "{":
                raise self.error("unsupported repetition {m,n}")
            items.append(item)
            self.skip_space(newline_ok=nested)
        if len(items) == 1:
            return items[0]
        return self.node("seq", tuple(items))

    def literal(self) -> tuple:
        self.pos += 1  # opening quote
        chars = []
        while self.peek() != '"':
            if self.peek() in ("", "\n", "\r"):
                raise self.error("unterminated string literal")
            chars.append(self.char())
        self.pos += 1
        return self.node("lit", "".join(chars))

    def char_class(self) -> tuple:
        self.pos += 1  # '['
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        ranges = []
        while self.peek() != "]":
            if self.peek() in ("", "\n", "\r"):
                raise self.error("unterminated character class")
            lo = self.char()
            hi = lo
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.pos += 1
                hi = self.char()
            if ord(hi) < ord(lo):
                raise self.error("empty range in character class")
            ranges.append((ord(lo), ord(hi)))
        self.pos += 1
        if not ranges:
            raise self.error("empty character class")
        return self.node("cls", negated, tuple(ranges))


# ---------------------------------------------------------------- matching

class Grammar:
    """A parsed grammar; `matches(s)` says whether `root` derives exactly `s`."""

    def __init__(self, text: str):
        if not isinstance(text, str):
            raise GrammarError("grammar must be text")
        self.rules = _Parser(text).grammar()

    def matches(self, s: str, start: str = "root") -> bool:
        if not isinstance(s, str):
            raise TypeError("can only match text")
        return len(s) in _Run(self.rules, s).ends(self.rules[start], 0)


class _Run:
    """One membership query: memoised end-position sets for (node, position)."""

    def __init__(self, rules: dict, s: str):
        self.rules, self.s, self.n = rules, s, len(s)
        self.memo: dict = {}
        self.active: set = set()

    def ends(self, node: tuple, pos: int) -> frozenset:
        key = (node[1], pos)
        got = self.memo.get(key)
        if got is not None:
            return got
        if key in self.active:
            raise GrammarError("left recursion is not supported")
        self.active.add(key)
        try:
            got = self._ends(node, pos)
        finally:
            self.active.discard(key)
        self.memo[key] = got
        return got

    def _ends(self, node: tuple, pos: int) -> frozenset:
        kind = node[0]
        if kind == "lit":
            text = node[2]
            return frozenset((pos + len(text),)) if self.s.startswith(text, pos) else frozenset()
        if kind == "cls":
            if pos >= self.n:
                return frozenset()
            cp = ord(self.s[pos])
            inside = any(lo <= cp <= hi for lo, hi in node[3])
            return frozenset((pos + 1,)) if inside != node[2] else frozenset()
        if kind == "ref":
            return self.ends(self.rules[node[2]], pos)
        if kind == "alt":
            out: set = set()
            for option in node[2]:
                out |= self.ends(option, pos)
            return frozenset(out)
        if kind == "seq":
            here = {pos}
            for item in node[2]:
                nxt: set = set()
                for p in here:
                    nxt |= self.ends(item, p)
                if not nxt:
                    return frozenset()
                here = nxt
            return frozenset(here)
        if kind == "opt":
            return frozenset({pos} | self.ends(node[2], pos))
        if kind in ("star", "plus"):
            inner = node[2]
            first = self.ends(inner, pos)
            reached = set(first)
            frontier = list(first)
            while frontier:  # iterative closure: no recursion depth proportional to the input
                p = frontier.pop()
                for e in self.ends(inner, p):
                    if e not in reached:
                        reached.add(e)
                        frontier.append(e)
            if kind == "star":
                reached.add(pos)
            return frozenset(reached)
        raise AssertionError(f"unknown node {kind}")  # pragma: no cover


@functools.lru_cache(maxsize=32)
def parse_grammar(text: str) -> Grammar:
    return Grammar(text)


def matches(grammar_text: str, s: str) -> bool:
    """Whether `s`, as a whole, is in the language of the grammar's `root` rule."""
    return parse_grammar(grammar_text).matches(s)
