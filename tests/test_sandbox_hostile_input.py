"""Bad input to the sandbox: code or tests that are not UTF-8, hold NUL or lone surrogates, are
megabyte lines or deeply nested, empty, do not parse, or are not strings at all. Each gives a
clear failure, never a pass or a crash of the verifier.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sandbox_attacks import BWRAP_ONLY, GOOD_ADD, MODES, TESTS3, WRONG_ADD, assert_rejected, run  # noqa: E402

pytestmark = BWRAP_ONLY


# --- bad input ----------------------------------------------------------------------------------

BAD_INPUTS = {
    "non-UTF-8 code": (b"def add(a, b):\n    return '\xff\xfe'\n", TESTS3),
    "non-UTF-8 tests": (GOOD_ADD, b"assert add(1, 2) == '\xff'\n"),
    "NUL in code": ("def add(a, b):\x00\n    return a + b\n", TESTS3),
    "NUL in tests": (GOOD_ADD, "assert add(1, 2) == 3\x00\n"),
    "1 MB line of code": ("_x = '" + "a" * 1_000_000 + "'\n" + WRONG_ADD, TESTS3),
    "1 MB line of garbage code": ("a" * 1_000_000 + " = = 1\n", TESTS3),
    "1 MB of nested unary minus in code": ("-" * 1_000_000 + "1\n", TESTS3),
    "1 MB line of tests": (WRONG_ADD, "assert add(1, 2) == '" + "b" * 1_000_000 + "'\n"),
    "deep nesting in tests": (GOOD_ADD, "assert add(1, 2) == 3" + " + 0" * 300_000 + "\n"),
    "empty code": ("", TESTS3),
    "empty tests": (GOOD_ADD, ""),
    "comment-only tests": (GOOD_ADD, "# nothing here\n\n"),
    "tests that do not parse": (GOOD_ADD, "assert add(1, 2 == 3\n"),
    "code that does not parse": ("def add(a, b)\n    return a + b\n", TESTS3),
    "lone surrogate in code": ("def add(a, b):\n    return '\udc80'\n", TESTS3),
    "lone surrogate in tests": (GOOD_ADD, "assert add(1, 2) == '\udc80'\n"),
    "code is None": (None, TESTS3),
    "tests are a list": (GOOD_ADD, ["assert add(1, 2) == 3"]),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_gives_a_clear_failure(verifiers, mode, name):
    code, tests = BAD_INPUTS[name]
    r = run(verifiers[mode], code, tests, timeout_s=5)
    assert_rejected(r)


def test_tests_that_exhaust_the_parser_give_a_clear_failure(verifiers):
    r = run(verifiers["fork"], GOOD_ADD, "assert add(1, 2) == " + "-" * 1_000_000 + "3\n")
    assert_rejected(r)
