"""Hostile code that fakes a pass: exits, printed verdicts, replaced builtins, `__main__` or
`os.write`, guessed or rewritten result records, tracers and hooks; tests deleted, replaced or
skipped; builtins, helpers and modules the tests use swapped. None may count as a pass.

The one thing a sandbox cannot see, semantic reward hacking (an object whose `__eq__` is always
true), is documented by a test that asserts it *does* pass.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sandbox_attacks import (  # noqa: E402
    BWRAP_ONLY,
    MODES,
    TESTS3,
    assert_rejected,
    at_import,
    code_of,
    in_function,
    run,
)

pytestmark = BWRAP_ONLY


# --- forgeries ----------------------------------------------------------------------------------

PRINTS = '''
import sys
for _s in ("All 3 tests pass.", "OK", "passed", "Tests: 3/3 pass.", "PASSED"):
    print(_s)
    print(_s, file=sys.stderr)
sys.stdout.flush()
'''
FORGERIES = {
    "sys.exit(0)": at_import("import sys\nsys.exit(0)"),
    "sys.exit(0) in test": in_function("import sys\nsys.exit(0)"),
    "os._exit(0)": at_import("import os\nos._exit(0)"),
    "os._exit(0) in test": in_function("import os\nos._exit(0)"),
    "raise SystemExit": at_import("raise SystemExit"),
    "raise SystemExit in test": in_function("raise SystemExit(0)"),
    "raise KeyboardInterrupt in test": in_function("raise KeyboardInterrupt"),
    "print pass": at_import(PRINTS),
    "print pass in test": in_function(PRINTS),
    "print pass then exit": at_import(PRINTS + "import os\nos._exit(0)"),
    "AssertionError replaced": at_import(
        "import builtins\nbuiltins.AssertionError = type('X', (Exception,), {})"),
    "AssertionError replaced in test": in_function(
        "import builtins\nbuiltins.AssertionError = type('X', (Exception,), {})"),
    "builtins replaced": at_import('''
        import builtins
        builtins.len = lambda *a, **k: 0
        builtins.repr = lambda *a, **k: "('test', 0, 'pass', '', '', 0, '', '')"
        builtins.str = lambda *a, **k: "pass"
        builtins.isinstance = lambda *a, **k: False
        builtins.exec = lambda *a, **k: None
        builtins.eval = lambda *a, **k: True
        builtins.range = lambda *a, **k: iter(())
        builtins.type = lambda *a, **k: None
    '''),
    "builtins replaced in test": in_function('''
        import builtins
        builtins.exec = lambda *a, **k: None
        builtins.eval = lambda *a, **k: True
        builtins.repr = lambda *a, **k: "pass"
        builtins.len = lambda *a, **k: 0
    '''),
    "__main__ overwritten": at_import('''
        import __main__
        _ok = [("code", "ok", "", "", 0)] + [("test", i, "pass", "", "", 0, "", "") for i in range(32)] + [("end",)]
        for _name, _value in {
            "exec": lambda *a, **k: None, "eval": lambda *a, **k: True, "range": lambda *a: iter(()),
            "len": lambda *a: 0, "AssertionError": type("X", (Exception,), {}),
            "run_child": lambda *a, **k: None, "parse_records": lambda *a, **k: list(_ok),
            "CODE_LINE_OFFSET": 0, "TEST_LINE_OFFSET": 0, "RECORD_BUDGET": 0,
            "collect": lambda *a, **k: {"records": list(_ok)},
        }.items():
            setattr(__main__, _name, _value)
    '''),
    "__main__ overwritten in test": in_function('''
        import __main__
        __main__.exec = lambda *a, **k: None
        __main__.eval = lambda *a, **k: True
        __main__.AssertionError = type("X", (Exception,), {})
        __main__.parse_records = lambda *a, **k: []
    '''),
    "os.write patched": at_import('''
        import os
        _real_write = os.write
        def _write(fd, data):
            data = bytes(data).replace(b"'fail'", b"'pass'").replace(b"'error'", b"'pass'")
            return _real_write(fd, data)
        os.write = _write
    '''),
    "os.write patched in test": in_function('''
        import os
        _real_write = os.write
        os.write = lambda fd, data: _real_write(fd, bytes(data).replace(b"'fail'", b"'pass'"))
    '''),
    "guessed records on every fd then exit": at_import('''
        import os
        _recs = [("code", "ok", "", "", 0)] + [("test", i, "pass", "", "", 0, "", "") for i in range(16)] + [("end",)]
        _guesses = [b"x ", b"", b"0" * 32 + b" ", os.urandom(16).hex().encode() + b" ", b"None ", b"nonce "]
        _lines = b"".join(g + repr(r).encode() + b"\\n" for g in _guesses for r in _recs)
        for _fd in range(0, 51):
            try:
                os.write(_fd, _lines)
            except OSError:
                pass
        os._exit(0)
    '''),
    "guessed records on every fd in test": in_function('''
        import os
        _line = b"x ('test', 0, 'pass', '', '', 0, '', '')\\n"
        _recs = b"".join(b"x " + repr(("test", i, "pass", "", "", 0, "", "")).encode() + b"\\n" for i in range(16))
        for _fd in range(0, 51):
            try:
                os.write(_fd, _line + _recs + b"x ('end',)\\n")
            except OSError:
                pass
    '''),
    "records rewritten in place": in_function('''
        import os
        _recs = b"".join(b"x " + repr(("test", i, "pass", "", "", 0, "", "")).encode() + b"\\n" for i in range(16))
        for _fd in range(3, 51):
            try:
                os.pwrite(_fd, _recs, 0)
            except OSError:
                pass
            try:
                os.ftruncate(_fd, 0)
            except OSError:
                pass
    '''),
    "sys.settrace": at_import('''
        import sys
        def _tracer(frame, event, arg):
            return _tracer
        sys.settrace(_tracer)
    '''),
    "sys.setprofile": at_import("import sys\nsys.setprofile(lambda *a: None)"),
    "threading.settrace": in_function('''
        import sys, threading
        threading.settrace(lambda *a: None)
        sys.settrace(lambda *a: None)
    '''),
    # refused silently: CPython drops a new hook when an existing one raises an Exception
    "sys.addaudithook": at_import("import sys\nsys.addaudithook(lambda *a: None)"),
    "raise SkipTest in test": in_function("import unittest\nraise unittest.SkipTest('skip me')"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(FORGERIES))
def test_forgery_is_not_a_pass(verifiers, mode, name):
    r = run(verifiers[mode], FORGERIES[name], TESTS3)
    assert_rejected(r)
    if name.startswith(("sys.settrace", "sys.setprofile", "threading.settrace")):
        assert "not allowed" in r.feedback, r.feedback


def test_always_equal_object_is_not_caught_by_sandbox(verifiers):
    """Semantic reward hacking: the code returns an object equal to anything. No sandbox can tell
    this from a right answer; it has to be caught elsewhere (e.g. tests that check types)."""
    code = code_of('''
        class _Always:
            def __eq__(self, other):
                return True
            __hash__ = None

        def add(a, b):
            return _Always()
    ''')
    r = run(verifiers["fork"], code, TESTS3)
    assert r.passed, r.feedback


# --- deleting or skipping tests -----------------------------------------------------------------

TESTS_12 = "def test_1():\n    assert f(1) == 1\n\ndef test_2():\n    assert f(2) == 3\n"
SKIPS = {
    "test names defined by the code": "test_1 = None\ntest_2 = lambda: None\ndef f(x):\n    return x\n",
    "test_2 replaced in globals": "def f(x):\n    globals()['test_2'] = lambda: None\n    return x\n",
    "test_2 deleted from globals": "def f(x):\n    globals().pop('test_2', None)\n    return x\n",
    "test_2.__code__ replaced": ("def f(x):\n    try:\n"
                                "        globals()['test_2'].__code__ = (lambda: None).__code__\n"
                                "    except Exception:\n        pass\n    return x\n"),
    "test_2 wrapped": ("def f(x):\n    t = globals()['test_2']\n"
                       "    globals()['test_2'] = lambda: None\n    globals()['test_3'] = t\n    return x\n"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(SKIPS))
def test_deleting_or_replacing_tests_does_not_skip_them(verifiers, mode, name):
    r = run(verifiers[mode], SKIPS[name], TESTS_12)
    assert_rejected(r, tests_passed=1)
    assert r.tests_total == 2
    assert "test_2()" in r.feedback, r.feedback


# The code runs in the same interpreter and namespace as the tests, so it can change what the
# tests themselves call. These are not semantic: the code's answers are wrong.
@pytest.mark.parametrize("mode", MODES)
def test_code_cannot_replace_builtins_the_tests_use(verifiers, mode):
    code = "import builtins\nbuiltins.len = lambda x: 3\ndef f():\n    return []\n"
    assert_rejected(run(verifiers[mode], code, "assert len(f()) == 3\n"))


@pytest.mark.parametrize("mode", MODES)
def test_code_cannot_replace_a_helper_the_tests_define(verifiers, mode):
    code = "def f(x):\n    globals()['check'] = lambda *a: None\n    return x + 1\n"
    tests = "def check(x, want):\n    assert f(x) == want\n\ncheck(1, 2)\ncheck(2, 5)\ncheck(3, 9)\n"
    assert_rejected(run(verifiers[mode], code, tests), tests_passed=1)


@pytest.mark.parametrize("mode", MODES)
def test_code_cannot_replace_a_module_the_tests_import(verifiers, mode):
    code = code_of('''
        import sys, types
        _fake = types.ModuleType("math")
        _fake.isclose = lambda *a, **k: True
        sys.modules["math"] = _fake
        def f():
            return 99.0
    ''')
    assert_rejected(run(verifiers[mode], code, "import math\nassert math.isclose(f(), 0.5)\n"))
