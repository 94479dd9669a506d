"""The central property of dsl.commands (the issue's): `parse` and `GRAMMAR_GBNF` accept the same
language, over hypothesis-drawn commands, mutants and random strings, a seeded corpus and
exhaustive sets of small strings. The grammar side is decided by tests/gbnf_matcher.py, an
independent GBNF interpreter, which as the oracle gets its own checks here first.
"""
from __future__ import annotations

import itertools
import pathlib
import random
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import gbnf_matcher  # noqa: E402
from command_language import (  # noqa: E402
    SETTINGS,
    TRICKY_CHARS,
    accepted,
    commands,
    in_grammar,
    rng_mutant,
    rng_valid,
)
from dsl.commands import GRAMMAR_GBNF, Command, parse  # noqa: E402


# ==================================================================== the GBNF matcher itself

class TestMatcher:
    """The matcher is the oracle of the equivalence test, so it gets its own checks."""

    def test_literal_class_and_postfix_operators(self):
        g = r'''root ::= "ab" [x-z]? [0-9]* [^a\n]+ ("|" | "q")'''
        m = gbnf_matcher.parse_grammar(g).matches
        assert m("abb|")
        assert m("abx0123bq")
        assert m("ab12 \t|")
        assert not m("abq")  # [^a\n]+ needs at least one character
        assert not m("abaq")  # 'a' is excluded by [^a\n]
        assert not m("ab\nq")
        assert not m("ab1|x")  # whole-string match only
        assert not m("")

    def test_escapes(self):
        g = r'''root ::= "\"\\\t" [\]\[] "\x41\u00e9\U0001F600" [^\r\n]'''
        m = gbnf_matcher.parse_grammar(g).matches
        assert m('"\\\t]A\u00e9\U0001F600x')
        assert m('"\\\t[A\u00e9\U0001F600\t')
        assert not m('"\\\t]A\u00e9\U0001F600\r')
        assert not m('"\\\t]A\u00e9\U0001F600\n')

    def test_rules_newlines_comments_and_ambiguity(self):
        g = (
            "# comment line\n"
            "root ::= a (\n  b | c\n) # trailing comment\n"
            "\n"
            "a ::= \"x\"* \"x\"   |\n   \"y\"\n"
            "b ::= \"1\"+\n"
            "c ::= \"2\" c | \"2\"\n"
        )
        m = gbnf_matcher.parse_grammar(g).matches
        assert m("x1") and m("xxxx111") and m("y222") and m("y1")
        assert not m("1") and not m("xy1") and not m("x12")

    def test_dashed_rule_names_and_crlf_grammar_text(self):
        m = gbnf_matcher.parse_grammar('root ::= check-mate\r\ncheck-mate ::= "#"\r\n').matches
        assert m("#") and not m("")

    @pytest.mark.parametrize(
        "grammar",
        [
            'root ::= "a"{2}',  # repetition counts
            "root ::= .",  # any-character
            'root ::= "a" "b\n',  # unterminated literal
            "root ::= [ab",  # unterminated class
            'root ::= "\\q"',  # unknown escape
            'root ::= x\nx_y ::= "a"',  # '_' is not allowed in rule names
            'root ::= missing',  # undefined rule
            'start ::= "a"',  # no root
            'root ::= "a" root2 ::= "b"',  # two rules on one line
            'root ::= ("a"',  # unbalanced parenthesis
            'root ::= "a")',
            'root ::= "a"**',
            'root ::= "a"\nroot ::= "b"',
            "root ::= [z-a]",
            "root ::= []",
        ],
    )
    def test_unsupported_or_malformed_grammar_raises(self, grammar):
        with pytest.raises(gbnf_matcher.GrammarError):
            gbnf_matcher.Grammar(grammar)

    def test_left_recursion_raises(self):
        g = gbnf_matcher.Grammar('root ::= root "a" | "a"')
        with pytest.raises(gbnf_matcher.GrammarError):
            g.matches("aa")

    def test_grammar_of_commands_parses_with_expected_rules(self):
        rules = gbnf_matcher.parse_grammar(GRAMMAR_GBNF).rules
        assert {"root", "command", "dell", "exit", "addl", "repl", "repw", "num", "text", "old"} <= set(rules)


# ==================================================================== parser == grammar

LEAD_WS = st.text(st.sampled_from(" \t\r\n"), max_size=4)
TRAIL_NL = st.text(st.sampled_from("\r\n"), max_size=3)
TRAIL_BLANK = st.text(st.sampled_from(" \t"), max_size=3)


@st.composite
def valid_commands(draw) -> tuple[str, Command]:
    """(raw text, the Command it must parse to), using every tolerated decoration."""
    cmd = draw(commands())
    if cmd.op == "EXIT":
        body = "EXIT" + draw(TRAIL_BLANK)
    elif cmd.op == "DELL":
        body = f"DELL {cmd.line}" + draw(TRAIL_BLANK)
    else:
        body = str(cmd)
    prefix = draw(LEAD_WS) + draw(st.sampled_from(["", "### "]))
    return prefix + body + draw(TRAIL_NL), cmd


MUTATION_CHAR = st.one_of(st.sampled_from(TRICKY_CHARS), st.characters())


@st.composite
def mutants(draw) -> str:
    s, _ = draw(valid_commands())
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        i = draw(st.integers(0, len(s)))
        if kind == "insert":
            s = s[:i] + draw(MUTATION_CHAR) + s[i:]
        elif kind == "delete":
            s = s[:i] + s[i + 1:]
        else:
            s = s[:i] + draw(MUTATION_CHAR) + s[i + 1:]
    return s


RANDOM_STRINGS = st.one_of(
    st.text(st.sampled_from(TRICKY_CHARS), max_size=25),
    st.text(MUTATION_CHAR, max_size=25),
    st.text(max_size=25),
    # a command head followed by random tails dense in the characters that decide the split
    st.builds(
        str.__add__,
        st.sampled_from(["REPW 1 >>>", "REPW 99 >>>a", "ADDL 1 >>>", "DELL ", "DELL 1", "EXIT", "### "]),
        st.one_of(
            st.text(st.sampled_from(list("> >a#\n\r\t0")), max_size=14),
            st.lists(st.sampled_from([">", ">>", ">>>", " >>>", " ", "a", "\t", "\n"]), max_size=6).map("".join),
        ),
    ),
)


def assert_same_language(s: str) -> bool:
    by_parser = accepted(s)
    by_grammar = in_grammar(s)
    assert by_parser == by_grammar, f"parse {'accepts' if by_parser else 'rejects'} {s!r}, grammar does not agree"
    return by_parser


@SETTINGS
@given(valid_commands())
def test_valid_commands_accepted_by_both(pair):
    s, cmd = pair
    assert parse(s) == cmd
    assert in_grammar(s)


@SETTINGS
@given(mutants())
def test_mutants_same_language(s):
    assert_same_language(s)


@SETTINGS
@given(RANDOM_STRINGS)
def test_random_strings_same_language(s):
    assert_same_language(s)


# -- deterministic corpus (command_language's rng_valid and rng_mutant): a known, large share of
# accepted strings, and exhaustive small sets

def test_deterministic_corpus_agrees_and_has_both_outcomes():
    rng = random.Random(20240601)
    n_valid = n_mut_ok = n_mut = 0
    ops_seen = set()
    for _ in range(800):
        s = rng_valid(rng)
        assert assert_same_language(s), s
        ops_seen.add(parse(s).op)
        n_valid += 1
    for _ in range(1200):
        s = rng_mutant(rng)
        n_mut_ok += assert_same_language(s)
        n_mut += 1
    assert ops_seen == {"DELL", "ADDL", "REPL", "REPW", "EXIT"}
    total_ok = n_valid + n_mut_ok
    # a decent share of the corpus is accepted, and a decent share of mutants is rejected
    assert 0.45 <= total_ok / (n_valid + n_mut) <= 0.9, total_ok
    assert 0.15 <= n_mut_ok / n_mut <= 0.85, n_mut_ok


@pytest.mark.parametrize(
    "prefix, alphabet, max_len",
    [
        ("REPW 1 >>>", "> a", 8),  # every way to split old/new around '>' and ' '
        ("REPW 1 >>>", "> a\n", 5),
        ("DELL", " 01\t\nx", 4),  # number and trailing-blank rules
        ("ADDL", " >10\r", 6),
        ("", "EXIT \n#", 5),
        ("### ", "EXIT \r", 5),
    ],
)
def test_exhaustive_small_strings_same_language(prefix, alphabet, max_len):
    n_ok = n = 0
    for k in range(max_len + 1):
        for chars in itertools.product(alphabet, repeat=k):
            n_ok += assert_same_language(prefix + "".join(chars))
            n += 1
    assert 0 < n_ok < n  # the enumeration reaches both sides of the boundary
