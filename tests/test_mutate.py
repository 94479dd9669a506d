"""The edit search's operators (dsl/mutate.py): each produces the edit it is for, as a command that
applies, and nothing that does not compile reaches a test run."""
from __future__ import annotations

import pytest

from dsl import EditorState
from dsl.mutate import Candidates, Hints, hints_from_feedback, mutations


def produced(code: str, hints: Hints | None = None) -> dict[str, set[str]]:
    """operator -> the programs its mutations leave."""
    state = EditorState.from_code(code)
    out: dict[str, set[str]] = {}
    for m in mutations(code, hints=hints):
        new = state.apply(m.command)
        assert isinstance(new, EditorState), m  # every command applies
        out.setdefault(m.operator, set()).add(new.to_code())
    return out


CASES = [
    ("compare", "def f(a, b):\n    return a < b\n", "def f(a, b):\n    return a <= b\n"),
    ("compare", "def f(x, s):\n    return x in s\n", "def f(x, s):\n    return x not in s\n"),
    ("compare", "def f(x):\n    return x is None\n", "def f(x):\n    return x is not None\n"),
    ("binop", "def f(a, b):\n    return a - b\n", "def f(a, b):\n    return a + b\n"),
    ("binop", "def f(n):\n    return n ^ (n - 1)\n", "def f(n):\n    return n & (n - 1)\n"),
    ("augassign", "def f(t, x):\n    t -= x\n    return t\n", "def f(t, x):\n    t += x\n    return t\n"),
    ("boolop", "def f(a, b):\n    return a and b\n", "def f(a, b):\n    return a or b\n"),
    ("not", "def f(a):\n    return not a\n", "def f(a):\n    return a\n"),
    ("not", "def f(a, b):\n    if a > 1 and b:\n        return 1\n", "def f(a, b):\n    if not (a > 1 and b):\n        return 1\n"),
    ("constant", "def f():\n    return 0\n", "def f():\n    return 1\n"),
    ("constant", "def f():\n    return True\n", "def f():\n    return False\n"),
    ("constant", "def f():\n    return []\n", "def f():\n    return [[]]\n"),
    ("bounds", "def f(r):\n    return range(0, r)\n", "def f(r):\n    return range(0, r + 1)\n"),
    ("bounds", "def f(a, i):\n    return a[i]\n", "def f(a, i):\n    return a[i - 1]\n"),
    ("bounds", "def f(d):\n    return len(d) * 2\n", "def f(d):\n    return (len(d) - 1) * 2\n"),
    ("call", "def f(a, b):\n    return g(a, b)\n", "def f(a, b):\n    return g(b, a)\n"),
    ("call", "def f(x):\n    return g(x)\n", "def f(x):\n    return x\n"),
    ("call", "def f(x):\n    return min(x)\n", "def f(x):\n    return max(x)\n"),
    ("call", "def f(p, x):\n    return any(x % q for q in p)\n", "def f(p, x):\n    return all(x % q for q in p)\n"),
    ("operand", "def f(r, a):\n    return r + a\n", "def f(r, a):\n    return a + r\n"),
    ("operand", "def f(x):\n    return 1 + g(x)\n", "def f(x):\n    return g(x)\n"),
    ("name", "def f(a, b):\n    return a\n", "def f(a, b):\n    return b\n"),
    ("name", "def f(a, b):\n    b = a + 1\n    return a\n", "def f(a, b):\n    a = a + 1\n    return a\n"),
    ("name", "def f(n):\n    return n.outgoing\n\n\ndef g(n):\n    return n.incoming\n",
     "def f(n):\n    return n.incoming\n\n\ndef g(n):\n    return n.incoming\n"),
    ("name", "def f(q):\n    while True:\n        return q\n", "def f(q):\n    while q:\n        return q\n"),
    ("statement", "def f(x):\n    x = x + 1\n    return x\n", "def f(x):\n    return x\n"),
    ("statement", "def f(x):\n    x.pop()\n    return x\n", "def f(x):\n    x.pop()\n    x.pop()\n    return x\n"),
    ("statement", "def f(x):\n    y = x * 2\n", "def f(x):\n    y = x * 2\n    return y\n"),
    # the last line replaced by the return that was lost in its place
    ("statement", "def f(x):\n    y = x * 2\n    z = q[0]\n", "def f(x):\n    y = x * 2\n    return y\n"),
    # a line moved one block out (the return inside the loop) or into the block before it
    ("statement", "def f(xs):\n    t = 0\n    for x in xs:\n        t += x\n        return t\n",
     "def f(xs):\n    t = 0\n    for x in xs:\n        t += x\n    return t\n"),
    ("statement", "def f(xs):\n    t = 0\n    for x in xs:\n        y = x\n    t += y\n    return t\n",
     "def f(xs):\n    t = 0\n    for x in xs:\n        y = x\n        t += y\n    return t\n"),
]


@pytest.mark.parametrize("operator,code,fixed", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_operator_produces_its_edit(operator, code, fixed):
    assert fixed in produced(code).get(operator, set()), sorted(produced(code).get(operator, set()))


def test_one_comparison_is_negated_by_its_operator_not_by_a_wrapping_not():
    """more-itertools' first(): `if default is not _marker:` is fixed as `is`, not `not (... is not ...)`."""
    code = "def f(d, m):\n    if d is not m:\n        return 1\n"
    made = produced(code)
    assert "def f(d, m):\n    if d is m:\n        return 1\n" in made["compare"]
    assert not any("not (" in c for c in made.get("not", set()))


def test_what_the_error_names_is_fixed_first():
    code = "def f(xs):\n    return lenn(xs) + sorted(xs).indx(1)\n"
    hints = hints_from_feedback("NameError: name 'lenn' is not defined\n'list' object has no attribute 'indx'")
    assert hints.undefined == {"lenn"} and hints.missing_attrs == [("list", "indx")]
    made = produced(code, hints)
    assert "def f(xs):\n    return len(xs) + sorted(xs).indx(1)\n" in made["undefined_name"]
    assert "def f(xs):\n    return lenn(xs) + sorted(xs).index(1)\n" in made["attribute_typo"]
    first = mutations(code, hints=hints)[0]
    assert first.operator in ("undefined_name", "attribute_typo")


def test_a_missing_import_is_added_at_the_top():
    code = "def f(s):\n    return re.sub('a', 'b', s)\n"
    made = produced(code, hints_from_feedback("NameError: name 're' is not defined"))
    assert "import re\n" + code in made["missing_import"]
    made = produced("def f(xs):\n    return Counter(xs)\n", hints_from_feedback("name 'Counter' is not defined"))
    assert "from collections import Counter\ndef f(xs):\n    return Counter(xs)\n" in made["missing_import"]


def test_usual_mistakes_come_first_within_a_group():
    """PIT's pairs: `-` is tried as `+` before `*`, `<` as `<=` before `==`."""
    ops = [str(m) for m in mutations("def f(a, b):\n    return a - b\n") if m.operator == "binop"]
    assert ops[0] == "REPW 2 >>>- >>>+"
    ops = [str(m) for m in mutations("def f(a, b):\n    return a < b\n") if m.operator == "compare"]
    assert ops[:2] == ["REPW 2 >>>< >>><=", "REPW 2 >>>< >>>>="]


def test_candidates_that_do_not_compile_or_repeat_never_cost_a_run():
    gate = Candidates("def f(x):\n    return x\n")
    assert not gate.fresh("def f(x):\n    return x\n")  # the start itself
    assert not gate.fresh("def f(x):\n    return (x)\n")  # the same AST
    assert not gate.fresh("def f(x):\n    return x +\n")  # does not parse
    assert not gate.fresh("def f(x):\n    return\n    yield from\n")
    assert not gate.fresh("def f():\n    nonlocal y\n")  # parses, does not compile
    assert gate.fresh("def f(x):\n    return x + 1\n") and not gate.fresh("def f(x):\n    return x+1\n")
    # a statement deleted out of a block that then has none: offered by the operator, stopped by the gate
    code = "def f(x):\n    if x:\n        return 1\n    return 0\n"
    deletions = [m for m in mutations(code) if str(m) == "DELL 3"]
    assert deletions and not Candidates().fresh(EditorState.from_code(code).apply(deletions[0].command).to_code())


def test_code_with_a_syntax_error_gets_line_edits_only():
    code = "def f(x):\n    else:\n    return x\n"
    made = produced(code)
    assert set(made) == {"statement"} and "def f(x):\n    return x\n" in made["statement"]


def test_a_misspelt_def_is_renamed_to_what_the_tests_call():
    code = "def split_llowerstring(text):\n    return text.lower()\n"
    made = produced(code, hints_from_feedback("NameError: name 'split_lowerstring' is not defined"))
    assert "def split_lowerstring(text):\n    return text.lower()\n" in made["undefined_name"]


def test_the_only_def_is_renamed_to_the_one_name_the_tests_call():
    code = "def bin(n):\n    return n * 2\n"
    made = produced(code, hints_from_feedback("NameError: name 'double' is not defined"))
    assert "def double(n):\n    return n * 2\n" in made["undefined_name"]
    # with two defs, a name nothing like either is left alone: which one was meant is a guess
    two = "def bin(n):\n    return n * 2\ndef other(n):\n    return n\n"
    made = produced(two, hints_from_feedback("NameError: name 'double' is not defined"))
    assert not any("def double" in c for c in made.get("undefined_name", ()))


def test_a_misspelt_assignment_or_parameter_takes_the_name_read_unassigned():
    code = "def f(numbers):\n    ttal = 1\n    for x in numbers:\n        total *= x\n    return total\n"
    hints = hints_from_feedback("UnboundLocalError: cannot access local variable 'total' where it is not "
                                "associated with a value (line 4)")
    assert hints.undefined == {"total"}
    assert code.replace("ttal = 1", "total = 1") in produced(code, hints)["undefined_name"]
    code = "def f(wrds):\n    return len(words)\n"
    made = produced(code, hints_from_feedback("NameError: name 'words' is not defined (line 2)"))
    assert "def f(words):\n    return len(words)\n" in made["undefined_name"]
    # the older spelling of the same error names the variable too
    assert hints_from_feedback("local variable 'n' referenced before assignment").undefined == {"n"}


def test_a_parameter_never_read_takes_the_name_the_body_reads_unbound():
    code = "def evens(filter):\n    xs = [x for x in nums if x % 2 == 0]\n    return xs\n"
    made = produced(code, hints_from_feedback("NameError: name 'nums' is not defined (line 2)"))
    assert "def evens(nums):\n    xs = [x for x in nums if x % 2 == 0]\n    return xs\n" in made["undefined_name"]
    # a parameter the body reads is left alone: renaming it would break the reads
    code = "def f(xs, filter):\n    return len(xs) + len(filter) + nums\n"
    made = produced(code, hints_from_feedback("NameError: name 'nums' is not defined (line 2)"))
    assert not any(c.startswith("def f(nums") or "filter" not in c.split("\n")[0]
                   for c in made.get("undefined_name", ()))


def test_a_line_moves_out_of_its_block_only_as_the_blocks_last_line():
    """Moving a line out from mid-block would not compile (the lines after it stay deeper); such
    moves are not even offered, and the gate would stop them."""
    code = "def f(xs):\n    for x in xs:\n        a = x\n        b = x\n    return b\n"
    moved = {c for c in produced(code)["statement"] if "\n    a = x" in c}
    assert moved == set()
    assert not Candidates().fresh("def f(xs):\n    for x in xs:\n    a = x\n        b = x\n    return b\n")


def test_a_called_name_that_holds_no_function_gets_the_builtin_meant():
    """`bin` shadowed by the def's own name, then the call renamed: 'int' object is not callable."""
    code = "def decimal_to_binary(n):\n    return n(n).replace('0b', '')\n"
    hints = hints_from_feedback("TypeError: 'int' object is not callable (line 2)")
    assert hints.not_callable
    made = produced(code, hints)
    assert "def decimal_to_binary(n):\n    return bin(n).replace('0b', '')\n" in made["not_callable"]
    assert "not_callable" not in produced(code)  # only where the error says so
    # a function the code defines is called as meant: its calls are left alone
    code = "def g(x):\n    return x\n\n\ndef f(n):\n    return g(n)(1)\n"
    assert not any("return len(n)" in c for c in produced(code, hints).get("not_callable", ()))


def test_a_local_read_before_assignment_gets_the_initialization_it_lost():
    """`prod = prod * x` with no `prod = 1`: the start value its use suggests comes first, placed
    before the statement that first uses the name and at the top of the function."""
    code = "def f(xs):\n    xs.sort()\n    for x in xs:\n        prod = prod * x\n    return prod\n"
    hints = hints_from_feedback("UnboundLocalError: cannot access local variable 'prod' where it is not "
                                "associated with a value (line 4)")
    ms = [m for m in mutations(code, hints=hints) if m.operator == "initialize"]
    assert str(ms[0].command) == "ADDL 3 >>>    prod = 1"
    made = produced(code, hints)["initialize"]
    assert "def f(xs):\n    prod = 1\n    xs.sort()\n    for x in xs:\n        prod = prod * x\n    return prod\n" in made
    # a list that is appended to starts empty; a parameter or a name the error does not name: nothing
    code = "def f(xs):\n    for x in xs:\n        out.append(x)\n        out = out\n    return out\n"
    ms = [m for m in mutations(code, hints=hints_from_feedback("local variable 'out' referenced before assignment"))
          if m.operator == "initialize"]
    assert str(ms[0].command) == "ADDL 2 >>>    out = []"
    assert not [m for m in mutations(code, hints=hints_from_feedback("name 'xs' is not defined"))
                if m.operator == "initialize"]
