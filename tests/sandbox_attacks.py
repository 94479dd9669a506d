"""What the hostile-code tests of the sandbox (tests/test_sandbox_hostile_*.py) share: the program
under attack and its tests, the ways to place an attack, a spawner the audit hook does not see,
and the bounded verify call with the verdicts it must give. The verifiers the attacks run against
are tests/conftest.py's `verifiers` fixture: one pair for all of those files.

Hostile code against the sandbox: it must be contained and never be counted as a pass.

Every attack is bounded *inside the test itself*, so that a broken sandbox cannot take the
machine down: fork bombs fork a fixed number of times and their children exit, the memory bomb
stops at 3 GiB, floods stop at 50 MB, loops rely on the verifier's timeout and each call is
asserted to return within a generous wall-clock bound.

Holes that exist today are written as `xfail(strict=True, reason="HOLE: ...")`: when a hole is
fixed the test starts passing, strict xfail turns that into a failure, and the marker comes off.
"""
from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dsl.sandbox import isolation
from dsl.verifier import Verifier

REPO = Path(__file__).resolve().parents[1]
MODES = ["fork", "fresh"]
WALL_BOUND_S = 20.0  # no verify call, however hostile the code, may take longer than this
OUT_CAP = 65536  # Limits.out_bytes
OUT_SLACK = 1024
PY311 = sys.version_info[:2] == (3, 11)  # `_posixsubprocess.fork_exec` signature used below

# each test file of the hostile suite: `pytestmark = BWRAP_ONLY`
BWRAP_ONLY = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only"),
    pytest.mark.skipif(sys.platform.startswith("linux") and isolation() != "bwrap",
                       reason="hostile code is only run under bubblewrap isolation"),
]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox uid is only used when started as root")
needs_py311 = pytest.mark.skipif(not PY311, reason="the fork_exec call below uses Python 3.11's signature")

# --- shared snippets ----------------------------------------------------------------------------

WRONG_ADD = "def add(a, b):\n    return a - b\n"
GOOD_ADD = "def add(a, b):\n    return a + b\n"
# three tests, all of which the wrong `add` fails: two top-level asserts and a test function
TESTS3 = "assert add(1, 2) == 3\nassert add(2, 2) == 4\n\ndef test_add():\n    assert add(0, 5) == 5\n"

# Start a program without the audit hook seeing it (Python 3.11's `_posixsubprocess.fork_exec`,
# which is what subprocess uses once its own `sys.audit` call has been made).
SPAWN = r'''
import os as _os
import _posixsubprocess

def _spawn(argv, new_session=False, out=-1):
    er, ew = _os.pipe()
    pid = _posixsubprocess.fork_exec(
        [_os.fsencode(a) for a in argv], [_os.fsencode(argv[0])], True, (), None, None,
        -1, -1, -1, out, -1, out, er, ew, True, new_session, -1, None, None, None, -1, None, False)
    _os.close(ew)
    _os.read(er, 1000)
    _os.close(er)
    return pid

def _spawn_output(argv):
    r, w = _os.pipe()
    pid = _spawn(argv, out=w)
    _os.close(w)
    out = b""
    while True:
        chunk = _os.read(r, 65536)
        if not chunk:
            break
        out += chunk
    _os.close(r)
    _os.waitpid(pid, 0)
    return out
'''


def code_of(*parts: str) -> str:
    return "\n".join(textwrap.dedent(p).strip("\n") + "\n" for p in parts)


def in_function(attack: str) -> str:
    """`attack` run by the function under test (so from inside a test), not at import."""
    return ("def _attack():\n" + textwrap.indent(textwrap.dedent(attack).strip("\n"), "    ") + "\n\n"
            "def add(a, b):\n    _attack()\n    return a - b\n")


def at_import(attack: str) -> str:
    return textwrap.dedent(attack).strip("\n") + "\n" + WRONG_ADD


def run(v: Verifier, code, tests, timeout_s: float = 2):
    start = time.monotonic()
    r = v.verify(code, tests, timeout_s=timeout_s)
    wall = time.monotonic() - start
    assert wall < WALL_BOUND_S, f"verify took {wall:.1f}s"
    assert isinstance(r.passed, bool) and isinstance(r.feedback, str)
    return r


def assert_rejected(r, *, tests_passed: int | None = 0):
    """Not passed, with feedback that says so; by default not a single test counted as passing."""
    assert not r.passed, r.feedback
    assert r.feedback.strip() and not r.feedback.startswith("All "), r.feedback
    if tests_passed is not None:
        assert r.tests_passed == tests_passed, r.feedback


def assert_recovers(v: Verifier):
    r = run(v, GOOD_ADD, TESTS3)
    assert r.passed and r.tests_passed == r.tests_total == 3, r.feedback
