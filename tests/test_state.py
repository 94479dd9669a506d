"""Tests of dsl.state: the rendering the model sees, `apply`, and the from_code/to_code round trip."""
from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dsl.commands import Command
from dsl.state import FEEDBACK_BUDGET, LINE_BUDGET, SEPARATOR, ApplyError, EditorState

SETTINGS = settings(max_examples=200, deadline=None)


def state(*lines: str, trailing: bool = False) -> EditorState:
    return EditorState(tuple(lines), trailing)


# ==================================================================== render (golden)

def test_constants():
    assert (LINE_BUDGET, FEEDBACK_BUDGET, SEPARATOR) == (300, 1000, "***")


def test_render_golden_basic():
    s = state("def add(a, b):", "    return a - b")
    assert s.render("FAILED test_add: assert add(1, 2) == 3") == (
        "L 1 def add(a, b):\n"
        "L 2     return a - b\n"
        "***\n"
        "FAILED test_add: assert add(1, 2) == 3"
    )


def test_render_golden_empty_lines():
    s = state("import os", "", "def f():", "", "", "    pass")
    assert s.render("ok") == (
        "L 1 import os\n"
        "L 2\n"
        "L 3 def f():\n"
        "L 4\n"
        "L 5\n"
        "L 6     pass\n"
        "***\n"
        "ok"
    )


def test_render_golden_blank_but_not_empty_line():
    # a line of spaces is not empty: it keeps the separating space plus its own spaces
    assert state("  ", "\t").render("f") == "L 1   \nL 2 \t\n***\nf"


def test_render_golden_no_code():
    assert state().render("SyntaxError: nothing here") == "***\nSyntaxError: nothing here"
    assert state().render("") == "***\n"


def test_render_golden_feedback_newlines():
    s = state("x = 1")
    assert s.render("\n\nline one\nline two\n\n") == "L 1 x = 1\n***\nline one\nline two"
    assert s.render("  indented  ") == "L 1 x = 1\n***\n  indented  "  # only newlines are stripped
    assert s.render("") == "L 1 x = 1\n***\n"


def test_render_golden_numbering_past_nine():
    s = state(*[chr(ord("a") + i) for i in range(11)])
    assert s.render("") == (
        "L 1 a\nL 2 b\nL 3 c\nL 4 d\nL 5 e\nL 6 f\nL 7 g\nL 8 h\nL 9 i\nL 10 j\nL 11 k\n***\n"
    )


DIGITS_400 = "0123456789" * 40


def test_render_line_budget_exact_fits():
    line = DIGITS_400[:300]
    assert state(line).render("f") == "L 1 " + "0123456789" * 30 + "\n***\nf"


def test_render_line_budget_truncates_with_ellipsis():
    # 301 characters: 299 are kept and the 300th is the ellipsis
    expected_line = "L 1 " + "0123456789" * 29 + "012345678" + "\u2026"
    assert state(DIGITS_400[:301]).render("f") == expected_line + "\n***\nf"
    assert state(DIGITS_400).render("f") == expected_line + "\n***\nf"
    shown = state(DIGITS_400).render("f").split("\n")[0]
    assert len(shown) == len("L 1 ") + 300 and shown.endswith("8\u2026")


def test_render_line_budget_applies_per_line():
    s = state("short", "x" * 500, "", "y" * 300)
    assert s.render("") == (
        "L 1 short\n"
        "L 2 " + "x" * 299 + "\u2026\n"
        "L 3\n"
        "L 4 " + "y" * 300 + "\n"
        "***\n"
    )


def test_render_feedback_budget():
    fits = "e" * 1000
    assert state("a").render(fits) == "L 1 a\n***\n" + "e" * 1000
    too_long = "0123456789" * 100 + "X"  # 1001 characters
    assert state("a").render(too_long) == "L 1 a\n***\n" + "0123456789" * 99 + "012345678" + "\u2026"
    # newlines are stripped before the budget is applied
    assert state("a").render("\n\n" + fits + "\n") == "L 1 a\n***\n" + "e" * 1000


def test_render_does_not_change_state():
    s = state("a" * 400, trailing=True)
    s.render("x" * 2000)
    assert s == state("a" * 400, trailing=True)


# ==================================================================== apply

CODE = state("a", "b", "c", trailing=True)


@pytest.mark.parametrize(
    "cmd, lines",
    [
        (Command("DELL", 1), ("b", "c")),
        (Command("DELL", 2), ("a", "c")),
        (Command("DELL", 3), ("a", "b")),
        (Command("ADDL", 1, "x"), ("x", "a", "b", "c")),
        (Command("ADDL", 2, "    x"), ("a", "    x", "b", "c")),
        (Command("ADDL", 3, ""), ("a", "b", "", "c")),
        (Command("ADDL", 4, "end"), ("a", "b", "c", "end")),  # one past the end is allowed
        (Command("REPL", 1, "x"), ("x", "b", "c")),
        (Command("REPL", 3, ""), ("a", "b", "")),
        (Command("REPL", 2, "  b  "), ("a", "  b  ", "c")),
    ],
)
def test_apply_ops(cmd, lines):
    new = CODE.apply(cmd)
    assert new == EditorState(lines, True)  # trailing newline is carried along
    assert CODE == state("a", "b", "c", trailing=True)  # the original is untouched


def test_apply_exit_is_identity():
    assert CODE.apply(Command("EXIT")) == CODE
    assert state().apply(Command("EXIT")) == state()


def test_apply_repw_replaces_every_occurrence():
    s = state("x = a + a * ab", "a")
    assert s.apply(Command("REPW", 1, "b", "a")) == state("x = b + b * bb", "a")
    assert s.apply(Command("REPW", 1, "", " ")) == state("x=a+a*ab", "a")
    assert s.apply(Command("REPW", 2, ">>>", "a")) == state("x = a + a * ab", ">>>")


def test_apply_addl_on_empty_code():
    assert state().apply(Command("ADDL", 1, "x")) == state("x")


def test_apply_sequence():
    s = state("def f(a, b):", "    return a - b")
    s = s.apply(Command("REPW", 2, "+", "-"))
    s = s.apply(Command("ADDL", 1, "import os"))
    s = s.apply(Command("ADDL", 4, ""))
    s = s.apply(Command("DELL", 4))
    s = s.apply(Command("REPL", 1, "import sys"))
    assert s == state("import sys", "def f(a, b):", "    return a + b")


@pytest.mark.parametrize(
    "start, cmd, message",
    [
        (CODE, Command("DELL", 0), "DELL 0: no such line (the code has lines 1-3)."),
        (CODE, Command("DELL", 4), "DELL 4: no such line (the code has lines 1-3)."),
        (CODE, Command("REPL", 4, "x"), "REPL 4: no such line (the code has lines 1-3)."),
        (CODE, Command("REPL", 0, "x"), "REPL 0: no such line (the code has lines 1-3)."),
        (CODE, Command("REPW", 4, "x", "a"), "REPW 4: no such line (the code has lines 1-3)."),
        (CODE, Command("ADDL", 5, "x"), "ADDL 5: line must be between 1 and 4."),
        (CODE, Command("ADDL", 0, "x"), "ADDL 0: line must be between 1 and 4."),
        (CODE, Command("ADDL", 99999, "x"), "ADDL 99999: line must be between 1 and 4."),
        (state(), Command("DELL", 1), "DELL 1: no such line (the code is empty)."),
        (state(), Command("REPL", 1, "x"), "REPL 1: no such line (the code is empty)."),
        (state(), Command("REPW", 1, "x", "a"), "REPW 1: no such line (the code is empty)."),
        (state(), Command("ADDL", 2, "x"), "ADDL 2: line must be between 1 and 1."),
        (state("one"), Command("DELL", 2), "DELL 2: no such line (the code has lines 1-1)."),
        (CODE, Command("REPW", 1, "x", "z"), "REPW 1: 'z' is not on line 1."),
        (CODE, Command("REPW", 2, "x", "a"), "REPW 2: 'a' is not on line 2."),
        (state("Abc"), Command("REPW", 1, "x", "abc"), "REPW 1: 'abc' is not on line 1."),  # case matters
        (state("ab"), Command("REPW", 1, "x", "ab "), "REPW 1: 'ab ' is not on line 1."),
        (CODE, Command("REPW", 1, "x", "q" * 80), "REPW 1: '" + "q" * 59 + "\u2026' is not on line 1."),
        (CODE, Command("ADDL", 1, "x\ny"), "The new text must be a single line."),
        (CODE, Command("ADDL", 1, "x\r"), "The new text must be a single line."),
        (CODE, Command("REPL", 1, "\n"), "The new text must be a single line."),
        (CODE, Command("REPW", 1, "b\r\nc", "a"), "The new text must be a single line."),
    ],
)
def test_apply_errors_leave_state_unchanged(start, cmd, message):
    before = EditorState(start.lines, start.trailing_newline)
    got = start.apply(cmd)
    assert isinstance(got, ApplyError)
    assert got.message == message
    assert not got  # falsy, like ParseError
    assert start == before


@SETTINGS
@given(
    st.lists(st.text(st.sampled_from("ab "), max_size=3), max_size=5),
    st.sampled_from(["DELL", "ADDL", "REPL", "REPW"]),
    st.integers(-1, 8),
    st.text(st.sampled_from("ab \n"), max_size=3),
    st.text(st.sampled_from("ab "), min_size=1, max_size=2),
)
def test_apply_is_all_or_nothing(lines, op, n, text, old):
    """Whatever the command, apply gives an error and no change, or exactly the documented edit."""
    s = EditorState(tuple(lines))
    got = s.apply(Command(op, n, text, old if op == "REPW" else ""))
    assert s == EditorState(tuple(lines))
    expected = list(lines)
    ok = "\n" not in text
    if op == "ADDL":
        ok = ok and 1 <= n <= len(lines) + 1
        if ok:
            expected.insert(n - 1, text)
    else:
        ok = ok and 1 <= n <= len(lines)
        if ok and op == "DELL":
            del expected[n - 1]
        elif ok and op == "REPL":
            expected[n - 1] = text
        elif ok:
            ok = old in lines[n - 1]
            if ok:
                expected[n - 1] = lines[n - 1].replace(old, text)
    if ok:
        assert got == EditorState(tuple(expected))
    else:
        assert isinstance(got, ApplyError) and got.message


# ==================================================================== from_code / to_code

@pytest.mark.parametrize(
    "code, lines, trailing",
    [
        ("", (), False),
        ("x", ("x",), False),
        ("x\n", ("x",), True),
        ("a\nb", ("a", "b"), False),
        ("a\nb\n", ("a", "b"), True),
        ("a\n\n", ("a", ""), True),
        ("\n\n", ("", ""), True),
        ("\na", ("", "a"), False),
        ("a\n\nb", ("a", "", "b"), False),
        ("  indented\n\ttab \n", ("  indented", "\ttab "), True),
    ],
)
def test_from_code_and_back(code, lines, trailing):
    s = EditorState.from_code(code)
    assert s == EditorState(lines, trailing)
    assert s.to_code() == code


def test_from_code_single_newline_round_trips():
    assert EditorState.from_code("\n").to_code() == "\n"


@pytest.mark.parametrize(
    "code, lines, trailing, back",
    [
        ("a\r\nb", ("a", "b"), False, "a\nb"),
        ("a\r\nb\r\n", ("a", "b"), True, "a\nb\n"),
        ("a\r\n\r\nb\r\n", ("a", "", "b"), True, "a\n\nb\n"),
        ("a\r\nb\nc", ("a", "b", "c"), False, "a\nb\nc"),  # mixed endings
        ("a\rb\r\n", ("a", "b"), True, "a\nb\n"),  # a lone CR ends a line, as for Python's tokenizer
    ],
)
def test_from_code_crlf_is_normalised_to_lf(code, lines, trailing, back):
    s = EditorState.from_code(code)
    assert s == EditorState(lines, trailing)
    assert s.to_code() == back
    assert EditorState.from_code(back) == s  # the normalised text is itself a fixed point


def test_trailing_newline_survives_edits():
    s = EditorState.from_code("a\nb\n")
    s = s.apply(Command("ADDL", 3, "c"))
    assert s.to_code() == "a\nb\nc\n"
    s = s.apply(Command("DELL", 1)).apply(Command("DELL", 1)).apply(Command("DELL", 1))
    assert s.lines == () and s.to_code() == ""  # no lines: no newline to end


@SETTINGS
@given(st.text(st.sampled_from(["a", " ", "\n", "\t", "é"]), max_size=12))
@example("")
@example("\n\n")
@example("a\n")
def test_from_code_round_trip(code):
    s = EditorState.from_code(code)
    assert s.to_code() == code
    assert all("\n" not in line for line in s.lines)
    assert s.trailing_newline == code.endswith("\n")
    assert EditorState.from_code(s.to_code()) == s


@SETTINGS
@given(st.lists(st.sampled_from(["a", "\r\n", "\n", " ", "\t"]), max_size=10).map("".join))
def test_from_code_crlf_round_trip(code):
    lf = code.replace("\r\n", "\n")
    s = EditorState.from_code(code)
    assert s.to_code() == lf
    assert s == EditorState.from_code(lf)


def test_from_code_of_to_code_is_a_fixed_point_with_lone_cr():
    s = EditorState.from_code("a\r\r\nb")
    assert EditorState.from_code(s.to_code()) == s
