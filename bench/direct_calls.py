"""A pytest plugin for bench/real_projects.py: which collected test calls which function directly.

    COEDIT_DIRECT_CALLS=OUT.json COEDIT_DIRECT_FILES=a.py:b.py python -m pytest -p direct_calls ...

While each test's own call runs (not its setup or teardown), a trace function notes every call of a
function defined in the named files whose caller is the test function itself (or a doctest's
example code): the tests that "call it directly". The answer is pytest's own collection run for
real, with no use of coedit's discovery, which the bench holds against it. Written as
{"file:name:first_line": [node ids]}.
"""
import json
import os
import sys

import pytest

_FILES = {os.path.realpath(f) for f in os.environ.get("COEDIT_DIRECT_FILES", "").split(":") if f}
_CALLS: dict[str, set[str]] = {}
_REAL: dict[str, str] = {}


def _real(path: str) -> str:
    if path not in _REAL:
        _REAL[path] = os.path.realpath(path)
    return _REAL[path]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    test = getattr(item, "obj", None)
    test = getattr(test, "__func__", test)
    test_code = getattr(test, "__code__", None)
    nodeid = item.nodeid

    def call(frame, event, arg):
        code = frame.f_code
        if event == "call" and _real(code.co_filename) in _FILES:
            caller = frame.f_back.f_code if frame.f_back else None
            if caller is not None and (caller is test_code or caller.co_filename.startswith("<doctest ")):
                key = f"{_real(code.co_filename)}:{code.co_name}:{code.co_firstlineno}"
                _CALLS.setdefault(key, set()).add(nodeid)
        return None
    sys.settrace(call)
    try:
        yield
    finally:
        sys.settrace(None)


def pytest_sessionfinish(session):
    out = os.environ.get("COEDIT_DIRECT_CALLS")
    if out:
        with open(out, "w") as f:
            json.dump({k: sorted(v) for k, v in _CALLS.items()}, f, indent=0)
