"""Tests of dsl.commands' parser: `parse`'s accepted forms (and the fields they give), its rejected
forms and their messages, `Command.__str__` (canonical, and read back by `parse`), and that
`parse` never raises, whatever it is given.

Every accepted or rejected string is also checked against `GRAMMAR_GBNF` (`in_grammar`); the
property that the two agree on every string is tests/test_commands_grammar.py's.
"""
from __future__ import annotations

import pathlib
import random
import sys

import pytest
from hypothesis import example, given

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from command_language import SETTINGS, TRICKY_CHARS, commands, in_grammar, rng_mutant, rng_text  # noqa: E402
from dsl.commands import MAX_LINE_NUMBER, TEMPLATES, Command, ParseError, parse  # noqa: E402


def assert_error(s) -> ParseError:
    result = parse(s)
    assert isinstance(result, ParseError), f"{s!r} parsed as {result!r}"
    assert TEMPLATES in result.message
    assert result.message.startswith("Invalid command: ")
    assert "\n" not in result.message and "\r" not in result.message
    assert not result  # falsy, so `if cmd := parse(...)` reads naturally
    return result


# ==================================================================== parse: accepted forms

@pytest.mark.parametrize(
    "raw, expected",
    [
        ("EXIT", Command("EXIT")),
        ("DELL 5", Command("DELL", 5)),
        ("ADDL 3 >>>x = 1", Command("ADDL", 3, "x = 1")),
        ("REPL 2 >>>return a + b", Command("REPL", 2, "return a + b")),
        ("REPW 2 >>>a - b >>>a + b", Command("REPW", 2, "a + b", "a - b")),
        # empty text is a legal new line / replacement
        ("ADDL 1 >>>", Command("ADDL", 1, "")),
        ("REPL 7 >>>", Command("REPL", 7, "")),
        ("REPW 7 >>>x >>>", Command("REPW", 7, "", "x")),
        # line-number bounds: 1..99999, no leading zeros
        ("DELL 1", Command("DELL", 1)),
        ("DELL 10", Command("DELL", 10)),
        ("DELL 99999", Command("DELL", MAX_LINE_NUMBER)),
        ("ADDL 99999 >>>z", Command("ADDL", 99999, "z")),
    ],
)
def test_parse_each_form(raw, expected):
    got = parse(raw)
    assert got == expected
    assert isinstance(got, Command) and got  # a Command is truthy
    assert in_grammar(raw)


def test_exit_fields_are_defaults():
    cmd = parse("EXIT")
    assert (cmd.op, cmd.line, cmd.text, cmd.old) == ("EXIT", 0, "", "")


def test_dell_fields():
    cmd = parse("DELL 12")
    assert (cmd.op, cmd.line, cmd.text, cmd.old) == ("DELL", 12, "", "")


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("### EXIT", Command("EXIT")),
        ("### DELL 4", Command("DELL", 4)),
        ("### ADDL 1 >>>x", Command("ADDL", 1, "x")),
        ("### REPW 1 >>>a >>>b", Command("REPW", 1, "b", "a")),
        # leading whitespace of any of the four kinds, before or without the prefix
        ("   EXIT", Command("EXIT")),
        ("\t\r\n \nDELL 4", Command("DELL", 4)),
        ("\n\n### REPL 2 >>>y", Command("REPL", 2, "y")),
        (" \t### EXIT", Command("EXIT")),
        # trailing newlines
        ("EXIT\n", Command("EXIT")),
        ("DELL 3\r\n", Command("DELL", 3)),
        ("ADDL 1 >>>x\n\n\r\n", Command("ADDL", 1, "x")),
        ("REPW 1 >>>a >>>b\r", Command("REPW", 1, "b", "a")),
        # trailing spaces/tabs after DELL n and EXIT, also before trailing newlines
        ("EXIT   ", Command("EXIT")),
        ("EXIT\t \t", Command("EXIT")),
        ("DELL 8 ", Command("DELL", 8)),
        ("DELL 8\t \n", Command("DELL", 8)),
        ("  ### DELL 8 \t\r\n\n", Command("DELL", 8)),
    ],
)
def test_parse_tolerated_surroundings(raw, expected):
    assert parse(raw) == expected
    assert in_grammar(raw)


@pytest.mark.parametrize(
    "raw, text",
    [
        ("ADDL 2 >>>    return a + b", "    return a + b"),  # indentation kept
        ("ADDL 2 >>>\t\tpass", "\t\tpass"),
        ("REPL 2 >>>x = 1   ", "x = 1   "),  # trailing spaces kept
        ("REPL 2 >>>x = 1 \t\n", "x = 1 \t"),  # only the trailing newline goes
        ("REPL 2 >>> ", " "),
        ("ADDL 1 >>>### comment >>> still text", "### comment >>> still text"),
        ("ADDL 1 >>>π = '→' \x00 \u2028 \x85 \x0b \x0c", "π = '→' \x00 \u2028 \x85 \x0b \x0c"),
        ("ADDL 1 >>>>>>", ">>>"),
        ("REPL 1 >>>DELL 2", "DELL 2"),
    ],
)
def test_text_is_taken_raw(raw, text):
    cmd = parse(raw)
    assert isinstance(cmd, Command)
    assert cmd.text == text
    assert in_grammar(raw)


@pytest.mark.parametrize(
    "raw, old, new",
    [
        ("REPW 1 >>>a>b >>>c", "a>b", "c"),  # '>' in old
        ("REPW 1 >>>a>>b >>>c", "a>>b", "c"),  # '>>' in old
        ("REPW 1 >>>x> >>>y", "x>", "y"),  # old ends in '>'
        ("REPW 1 >>>x>> >>>y", "x>>", "y"),  # old ends in '>>'
        ("REPW 1 >>>> >>>y", ">", "y"),
        ("REPW 1 >>>>> >>>y", ">>", "y"),
        ("REPW 1 >>>>a >>>b", ">a", "b"),  # old starts with '>'
        ("REPW 1 >>>a >> b >>>c", "a >> b", "c"),  # ' >>' is not the separator
        ("REPW 1 >>>a >>>b >>> c", "a", "b >>> c"),  # the first ' >>>' separates; new has '>>>'
        ("REPW 1 >>>a >>>>>>", "a", ">>>"),
        ("REPW 1 >>>a >>>>b", "a", ">b"),
        ("REPW 1 >>>  >>>x", " ", "x"),  # old may be a single space
        ("REPW 1 >>>a  >>>b", "a ", "b"),  # old keeps its trailing space
        ("REPW 1 >>>  a >>>  b  ", "  a", "  b  "),
        ("REPW 1 >>>a >>>", "a", ""),
    ],
)
def test_repw_splitting(raw, old, new):
    assert parse(raw) == Command("REPW", 1, new, old)
    assert in_grammar(raw)


# ==================================================================== parse: rejected forms

@pytest.mark.parametrize(
    "raw",
    [
        "REPW 1 >>>a>>>b >>>c",  # old may not contain '>>>'
        "REPW 1 >>>a>>>>b >>>c",
        "REPW 1 >>>>>> >>>c",
        "REPW 1 >>>a>>>b",  # '>>>' without the space is not a separator
        "REPW 1 >>>abc",  # no separator at all
        "REPW 1 >>> >>>x",  # empty old
        "REPW 1 >>>",
        "REPW 1 >>>>>>",
        "REPW 1 >>>a>>>",  # '>>>' directly after old (no space) does not separate
    ],
)
def test_repw_rejected(raw):
    assert_error(raw)
    assert not in_grammar(raw)


@pytest.mark.parametrize(
    "raw",
    [
        # line numbers
        "DELL 0", "DELL 00", "DELL 01", "DELL 007", "DELL 100000", "DELL 123456", "DELL 999999",
        "ADDL 0 >>>x", "ADDL 05 >>>x", "ADDL 123456 >>>x", "REPL 0 >>>x", "REPW 0 >>>a >>>b",
        "DELL -1", "DELL +1", "DELL 1.0", "DELL 1e3", "DELL ", "DELL", "DELL x",
        "DELL \u0661", "DELL \uff11", "DELL \u00b2",  # non-ASCII digits that int() would accept
        # arguments and spacing
        "DELL 1 2", "DELL 1 x", "DELL  1", "DELL\t1", "DELL1", "EXIT now", "EXIT 1", "EXITS",
        "ADDL 1 x", "ADDL 1>>>x", "ADDL 1  >>>x", "ADDL 1 >>x", "ADDL 1\t>>>x", "ADDL >>>x",
        "ADDL 1", "REPL 1", "REPL", "ADDL", "REPW 1 a >>>b",
        # prefix
        "###DELL 1", "#### DELL 1", "###  DELL 1", "## DELL 1", "### ", "###", "### ### EXIT",
        "# EXIT",
        # empty / blank
        "", " ", "\n", "\r\n\t ",
        # wrong case and unknown words
        "exit", "Exit", "eXIT", "dell 1", "Dell 1", "addl 1 >>>x", "Repl 1 >>>x", "repw 1 >>>a >>>b",
        "QUIT", "DEL 1", "INSERT 1 >>>x", "x DELL 1",
        # whitespace that is not tolerated
        "\u00a0EXIT", "EXIT\u00a0", "\x0bEXIT", "EXIT\x0c", "\u2028EXIT", "EXIT\u2028", "DELL 1\u3000",
        "\x00EXIT", "EXIT\x00", "DELL 1\x00",
    ],
)
def test_rejected(raw):
    assert_error(raw)
    assert not in_grammar(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "DELL 1\nDELL 2",
        "EXIT\nEXIT",
        "EXIT\rEXIT",
        "ADDL 1 >>>a\nb",
        "ADDL 1 >>>a\rb",
        "REPL 1 >>>a\r\nb",
        "REPW 1 >>>a >>>b\nc",
        "REPW 1 >>>a\n >>>b",
        "DELL 1\n ",  # something after a trailing newline
        "EXIT\n\t",
        "DELL 1 \r \n",
        "EXIT\n### EXIT",
    ],
)
def test_multiple_lines_rejected(raw):
    err = assert_error(raw)
    assert "one command per turn" in err.message
    assert not in_grammar(raw)


@pytest.mark.parametrize("value", [None, b"EXIT", bytearray(b"DELL 1"), 1, 1.5, ["EXIT"], ("EXIT",), object()])
def test_non_str_input_gives_parse_error(value):
    err = assert_error(value)
    assert "not text" in err.message


def test_str_subclass_is_accepted():
    class S(str):
        pass

    assert parse(S("DELL 2")) == Command("DELL", 2)


def test_error_messages_name_the_problem():
    assert "empty" in parse("  \n").message
    assert "unknown command 'exit'" in parse("exit").message
    assert "EXIT takes no arguments" in parse("EXIT 1").message
    assert "DELL needs one line number" in parse("DELL 0").message
    assert "ADDL needs a line number" in parse("ADDL 1 x").message
    assert "REPW needs ' >>>'" in parse("REPW 1 >>>abc").message
    assert "REPW needs non-empty old text" in parse("REPW 1 >>> >>>x").message


def test_unknown_word_is_shortened_in_message():
    err = assert_error("X" * 5000)
    assert len(err.message) < 200 + len(TEMPLATES)


# ==================================================================== str(cmd)

@pytest.mark.parametrize(
    "cmd, text",
    [
        (Command("EXIT"), "EXIT"),
        (Command("DELL", 3), "DELL 3"),
        (Command("ADDL", 1, "  x"), "ADDL 1 >>>  x"),
        (Command("REPL", 99999, ""), "REPL 99999 >>>"),
        (Command("REPW", 2, "+", "-"), "REPW 2 >>>- >>>+"),
        (Command("REPW", 2, ">>>", "a>>"), "REPW 2 >>>a>> >>>>>>"),
    ],
)
def test_str_is_canonical(cmd, text):
    assert str(cmd) == text
    assert parse(text) == cmd
    assert in_grammar(text)


@SETTINGS
@given(commands())
@example(Command("REPW", 1, ">>>", ">>"))
@example(Command("REPW", 1, " ", " "))
@example(Command("ADDL", 1, " >>>"))
def test_str_round_trip(cmd):
    s = str(cmd)
    assert parse(s) == cmd
    assert in_grammar(s)


# ==================================================================== never raises

def _random_input(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.3:  # near-commands
        return rng_mutant(rng)
    if kind < 0.5:  # tricky characters
        return rng_text(rng, "".join(TRICKY_CHARS) + "\x00\u00a0", rng.choice([0, 1, 5, 40, 300]))
    if kind < 0.8:  # arbitrary code points, including lone surrogates and NUL
        n = rng.choice([0, 1, 2, 10, 100, 2000])
        return "".join(chr(rng.choice([rng.randrange(0x110000), rng.randrange(0xD800, 0xE000),
                                       0, rng.randrange(128)])) for _ in range(n))
    # undecodable bytes smuggled in as surrogate escapes, after a valid-looking head
    raw = bytes(rng.randrange(256) for _ in range(rng.choice([1, 8, 64])))
    return rng.choice(["", "ADDL 1 >>>", "REPW 2 >>>", "EXIT"]) + raw.decode("utf-8", "surrogateescape")


def test_ten_thousand_random_strings_never_raise():
    rng = random.Random(0)
    inputs = [_random_input(rng) for _ in range(10_000)]
    inputs[17] = "ADDL 1 >>>" + "x" * 1_000_000  # megabyte-ish, valid
    inputs[4242] = "REPW 1 >>>" + "> " * 600_000 + "\x00"  # megabyte-ish, invalid
    inputs[9999] = "\x00" * 1_000_000
    outcomes = {Command: 0, ParseError: 0}
    for s in inputs:
        result = parse(s)
        assert type(result) in outcomes, (s[:50], result)
        outcomes[type(result)] += 1
        if isinstance(result, ParseError):
            assert TEMPLATES in result.message
    assert outcomes[Command] > 100 and outcomes[ParseError] > 5000
    big = parse(inputs[17])
    assert big == Command("ADDL", 1, "x" * 1_000_000)
    assert isinstance(parse(inputs[4242]), ParseError)
    assert isinstance(parse(inputs[9999]), ParseError)

