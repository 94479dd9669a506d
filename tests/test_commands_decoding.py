"""Tests of what constrained decoding asks of dsl.commands: `can_extend` (a prefix of some command
of the language), and the code grammar, `can_extend`/`can_end` against the lines of the code in
view (`lines_in_view`), which only narrows the syntax to commands that apply.
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dsl import can_end, lines_in_view
from dsl.commands import Command, can_extend, parse
from dsl.state import LINE_BUDGET, EditorState


# ==================================================================== can_extend (constrained decoding)

@settings(max_examples=300, deadline=None)
@given(st.builds(Command, st.sampled_from(["DELL", "ADDL", "REPL", "REPW", "EXIT"]),
                 st.integers(1, 99999), st.text(st.characters(blacklist_characters="\r\n"), max_size=12),
                 st.text(st.characters(blacklist_characters="\r\n>"), min_size=1, max_size=8)))
def test_every_prefix_of_a_canonical_command_can_be_extended(cmd):
    if cmd.op in ("DELL", "EXIT"):
        cmd = Command(cmd.op, 0 if cmd.op == "EXIT" else cmd.line)
    elif cmd.op != "REPW":
        cmd = Command(cmd.op, cmd.line, cmd.text)
    text = str(cmd)
    assert parse(text) == cmd
    assert all(can_extend(text[:i]) for i in range(len(text) + 1)), text


@settings(max_examples=400, deadline=None)
@given(st.text(st.sampled_from(list("DELXITAPRW 0123>\n#ab")), max_size=16), st.text(max_size=6))
def test_a_prefix_that_cannot_be_extended_never_becomes_a_command(prefix, suffix):
    if not can_extend(prefix):
        assert not can_extend(prefix + suffix)
        assert not isinstance(parse(prefix + suffix), Command) or (prefix + suffix) != str(parse(prefix + suffix))


def test_can_extend_examples():
    assert can_extend("") and can_extend("RE") and can_extend("REPW 12 >>>a >>") and can_extend("DELL 3")
    assert not can_extend("DELL 3 ") and not can_extend("EXIT ") and not can_extend("REPL 0")
    assert not can_extend("REPW 1 >>>a>>>") and not can_extend("ADDL 1 >>>x\n") and not can_extend("### DELL 1")


# ==================================================================== the code grammar (commands that apply)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_characters="\r\n"), max_size=20), min_size=1, max_size=12),
       st.text(max_size=30))
def test_lines_in_view_reads_back_the_rendered_code(lines, feedback):
    state = EditorState(tuple(lines))
    assert lines_in_view(state.render(feedback)) == lines
    assert lines_in_view(f"Task: t\n\nTests:\nassert f()\n\nCode:\n{state.render(feedback)}") == lines
    assert lines_in_view(f"REPW 9: no such line.\n{state.render(feedback)}") == lines


def test_lines_in_view_marks_clipped_lines_unknown_and_needs_a_state():
    long = "x = '" + "a" * (LINE_BUDGET + 10) + "'"
    assert lines_in_view(EditorState(("def f():", long)).render("")) == ["def f():", None]
    assert lines_in_view("no state here") is None and lines_in_view("Task: a\n***\nb") is None


def test_an_empty_state_reads_back_as_no_lines_so_only_addl_1_and_exit_decode():
    # an episode whose edits deleted every line: REPL/DELL/REPW of any line cannot apply
    empty = EditorState(()).render("NameError: name 'f' is not defined")
    for observation in (empty, f"DELL 1: no such line (the code is empty).\n{empty}",
                        f"Task: t\n\nTests:\nassert f()\n\nCode:\n{empty}"):
        lines = lines_in_view(observation)
        assert lines == []
        assert can_extend("ADDL 1 ", lines) and can_end("ADDL 1 >>>def f():", lines) and can_end("EXIT", lines)
        assert not can_extend("ADDL 2", lines) and not can_extend("REPL", lines) and not can_extend("DELL", lines)
        assert not can_extend("REPW", lines)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_characters="\r\n"), max_size=12), min_size=1, max_size=12),
       st.data())
def test_every_prefix_of_a_command_that_applies_can_be_extended_against_the_code(lines, data):
    n = data.draw(st.integers(1, len(lines)))
    op = data.draw(st.sampled_from(["DELL", "ADDL", "REPL", "REPW", "EXIT"]))
    text = data.draw(st.text(st.characters(blacklist_characters="\r\n"), max_size=8))
    if op == "REPW":
        line = lines[n - 1]
        if not line:
            return
        i = data.draw(st.integers(0, len(line) - 1))
        j = data.draw(st.integers(i + 1, len(line)))
        cmd = Command("REPW", n, text, line[i:j])
    else:
        cmd = Command(op, 0 if op == "EXIT" else n, text if op in ("ADDL", "REPL") else "")
    spelled = str(cmd)
    if parse(spelled) != cmd:
        return  # an old text the language cannot spell (e.g. one ending in " >>")
    assert isinstance(EditorState(tuple(lines)).apply(cmd), EditorState)
    assert all(can_extend(spelled[:i], lines) for i in range(len(spelled) + 1)), spelled
    assert can_end(spelled, lines)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["", "a = b", "return a - b", "x >> 1", "if a:"]), min_size=1, max_size=4),
       st.text(st.sampled_from(list("DELXITAPRW 0123>\nab-")), max_size=18), st.text(max_size=6))
def test_the_code_grammar_only_narrows_the_syntax_and_never_allows_an_error(lines, prefix, suffix):
    if can_extend(prefix, lines):
        assert can_extend(prefix)
    else:
        assert not can_extend(prefix + suffix, lines)
    if can_end(prefix, lines):
        assert isinstance(EditorState(tuple(lines)).apply(parse(prefix)), EditorState)


def test_code_grammar_examples():
    lines = ["def add(a, b):", "", "    return a - b"]
    assert can_extend("REPW 3 >>>a - ", lines) and can_extend("REPW 3 >>>a >>", lines)
    assert can_end("REPW 3 >>>a - b >>>a + b", lines) and can_end("ADDL 4 >>>x", lines) and can_end("EXIT", lines)
    assert not can_extend("REPW 3 >>>x", lines) and not can_extend("REPW 2", lines)  # not on the line; empty line
    assert not can_extend("DELL 4", lines) and not can_extend("ADDL 5", lines) and not can_extend("REPL 10", lines)
    twelve = ["x"] * 12
    assert can_extend("REPL 1", twelve) and can_extend("REPL 12 >>>", twelve) and not can_extend("REPL 13", twelve)
    assert not can_extend("RE", []) and can_extend("ADDL 1", [])
    assert can_extend("REPW 1 >>>anything", [None])  # a clipped line: its text is unknown
