"""The command language as the tests of dsl.commands (tests/test_commands_*.py) see it.

The two sides of the central property, that `parse` and `GRAMMAR_GBNF` accept the same language:
`accepted` (the parser) and `in_grammar` (decided by tests/gbnf_matcher.py, an independent GBNF
interpreter); and the generators of strings in and near the language that more than one of those
files draws from: hypothesis strategies (`commands`, `TRICKY_TEXT`) and seeded ones (`rng_valid`,
`rng_mutant`).
"""
from __future__ import annotations

import random

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import gbnf_matcher
from dsl.commands import GRAMMAR_GBNF, MAX_LINE_NUMBER, Command, ParseError, parse

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def in_grammar(s: str) -> bool:
    return gbnf_matcher.matches(GRAMMAR_GBNF, s)


def accepted(s) -> bool:
    result = parse(s)
    assert isinstance(result, (Command, ParseError)), f"parse returned {type(result)!r}"
    return isinstance(result, Command)


LINE_CHARS = st.characters(exclude_characters="\r\n", exclude_categories=())
TRICKY_TEXT = st.text(
    st.one_of(st.sampled_from(list(" >#\t>>xa0")), LINE_CHARS), max_size=30
)


@st.composite
def commands(draw) -> Command:
    """Any well-formed Command (the set `parse` can produce)."""
    op = draw(st.sampled_from(["DELL", "ADDL", "REPL", "REPW", "EXIT"]))
    if op == "EXIT":
        return Command("EXIT")
    line = draw(st.integers(1, MAX_LINE_NUMBER))
    if op == "DELL":
        return Command("DELL", line)
    text = draw(TRICKY_TEXT)
    if op != "REPW":
        return Command(op, line, text)
    old = draw(TRICKY_TEXT.map(no_triple).filter(bool))
    return Command("REPW", line, text, old)


def no_triple(s: str) -> str:
    while ">>>" in s:
        s = s.replace(">>>", ">>")
    return s


TRICKY_CHARS = list(" >#\n\r\t0123456789DELXITARPW")


def rng_text(rng: random.Random, alphabet: str, max_len: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, max_len)))


TEXT_ALPHABET = "  >>>#\tab=()\x00π\u2028\x85"


def rng_valid(rng: random.Random) -> str:
    op = rng.choice(["DELL", "ADDL", "REPL", "REPW", "EXIT"])
    num = str(rng.choice([1, 9, 10, 99, 1000, 99999, rng.randint(1, 99999)]))
    if op == "EXIT":
        body = "EXIT" + rng_text(rng, " \t", 2)
    elif op == "DELL":
        body = f"DELL {num}" + rng_text(rng, " \t", 2)
    elif op == "REPW":
        old = no_triple(rng_text(rng, TEXT_ALPHABET, 8)) or "x"
        body = f"REPW {num} >>>{old} >>>{rng_text(rng, TEXT_ALPHABET, 8)}"
    else:
        body = f"{op} {num} >>>{rng_text(rng, TEXT_ALPHABET, 10)}"
    return (rng_text(rng, " \t\r\n", 2) + rng.choice(["", "### "]) + body
            + rng_text(rng, "\r\n", 2))


def rng_mutant(rng: random.Random) -> str:
    s = rng_valid(rng)
    for _ in range(rng.randint(1, 2)):
        i = rng.randint(0, len(s))
        c = rng.choice(TRICKY_CHARS + ["\u00a0", "\x00", "é"])
        s = rng.choice([s[:i] + c + s[i:], s[:i] + s[i + 1:], s[:i] + c + s[i + 1:]])
    return s

