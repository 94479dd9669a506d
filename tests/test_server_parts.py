"""The server's plain parts: edits, targets, options, test discovery, the model cache."""
from __future__ import annotations

import ast
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types

from server.discovery import NoTests, discover
from server.edits import apply_edits, line_edits
from server.fix import ModelCache
from server.options import Options, options_from_json
from server.backends.sampling import checked_cutoffs, kept_by_cutoffs
from server.target import find_target

ENCODINGS = [types.PositionEncodingKind.Utf16, types.PositionEncodingKind.Utf8, types.PositionEncodingKind.Utf32]
LINES = st.lists(st.sampled_from(["a", "bé", "x = 1", "", "😀 y", "    return z"]), max_size=6)


@settings(max_examples=200, deadline=None)
@given(LINES, LINES, st.booleans(), st.booleans(), st.sampled_from(ENCODINGS))
def test_line_edits_turn_old_into_new(a, b, a_nl, b_nl, encoding):
    old = "\n".join(a) + ("\n" if a_nl and a else "")
    new = "\n".join(b) + ("\n" if b_nl and b else "")
    edits = line_edits(old, new, encoding)
    assert apply_edits(old, edits, encoding) == new
    assert (edits == []) == (old == new)


def test_edits_are_minimal():
    old = "def f():\n    return 1\n\n\ndef g():\n    return 2\n"
    edits = line_edits(old, old.replace("return 1", "return 3"))
    assert len(edits) == 1 and edits[0].range.start.line == 1 and edits[0].new_text == "    return 3\n"


SOURCE = "import os\n\n\nclass A:\n    @staticmethod\n    def m(x):\n        return x\n\n\ndef f(y):\n    def inner():\n        pass\n    return y\n"


def test_targets_are_innermost_functions_and_methods():
    assert find_target(SOURCE, 6).qualname == "A.m" and find_target(SOURCE, 6).start == 5
    assert find_target(SOURCE, 11).qualname == "f.inner"
    assert find_target(SOURCE, 12).qualname == "f" and find_target(SOURCE, 12).lines[-1] == "    return y"
    assert find_target(SOURCE, 0) is None and find_target(SOURCE, 1) is None
    assert find_target(SOURCE, 9, 12).qualname == "f"  # a selection


def test_a_method_is_seen_at_column_0_and_put_back_at_its_indentation():
    src = ("class A:\n    def m(self, x):\n        s = \"\"\"a\nleft\"\"\"\n\n        return x - 1\n\n"
           "    def other(self):\n        pass\n")
    t = find_target(src, 4)
    assert t.qualname == "A.m" and t.indent == "    "
    assert t.view == 'def m(self, x):\n    s = """a\nleft"""\n\n    return x - 1\n'
    ast.parse(t.view)  # the search compiles every candidate: a method must parse on its own
    assert t.from_view(t.view) == t.code  # the string's line that starts further left stays as it was
    fixed = t.splice(src, t.from_view(t.view.replace("x - 1", "x + 1")))
    assert fixed == src.replace("x - 1", "x + 1")
    assert find_target(SOURCE, 12).from_view("def f(y):\n    return y\n") == "def f(y):\n    return y\n"


def test_targets_in_a_file_that_does_not_parse():
    broken = "def ok():\n    return 1\n\ndef bad(x):\n    return x +\n\nprint(1)\n"
    t = find_target(broken, 4)
    assert (t.name, t.start, t.end) == ("bad", 3, 5)
    assert find_target(broken, 6) is None


def test_splice_keeps_the_rest_of_the_file_and_its_line_ends():
    src = "a = 1\r\ndef f():\r\n    return 1\r\nb = 2"
    t = find_target(src, 2)
    assert t.splice(src, "def f():\n    return 2\n") == "a = 1\r\ndef f():\r\n    return 2\r\nb = 2"


def test_options_from_client_json():
    opts, problems = options_from_json({"maxTurns": 5, "k": 2, "model": "/m.gguf", "tests": ["t.py"], "timeout": 3})
    assert (opts.max_turns, opts.k, opts.model, opts.tests, opts.timeout) == (5, 2, "/m.gguf", ["t.py"], 3.0)
    assert problems == []
    opts, problems = options_from_json({"k": "four", "bogus": 1, "backend": "gpu"})
    assert opts.k == Options().k and opts.backend == "auto" and len(problems) == 3
    assert options_from_json([])[0] == Options()  # Lua's empty table
    assert options_from_json(7)[1] == ["settings must be an object, not int"]
    opts, problems = options_from_json({"redraws": 3, "temperature": 1})
    assert (opts.redraws, opts.temperature, problems) == (3, 1.0, [])
    opts, problems = options_from_json({"redraws": -1})
    assert opts.redraws == Options().redraws and problems == ["redraws and temperature must be 0 or more; using the defaults"]


def test_discovery_finds_the_tests_that_call_the_function(tmp_path):
    (tmp_path / "lib.py").write_text("def area(r):\n    return 3 * r\n\ndef other():\n    pass\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_lib.py").write_text(
        "from lib import area\n\ndef test_area():\n    assert area(1) == 3\n\ndef test_unrelated():\n    pass\n\n"
        "class TestMore:\n    def test_more(self):\n        assert area(2) == 6\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "test_noise.py").write_text("def test_x():\n    area(1)\n")
    src = (tmp_path / "lib.py").read_text()
    found = discover(tmp_path, tmp_path / "lib.py", find_target(src, 1))
    assert found.node_ids == ["tests/test_lib.py::test_area", "tests/test_lib.py::TestMore::test_more"]
    assert "def test_area" in found.source and "test_unrelated" not in found.source
    with pytest.raises(NoTests, match="no tests found for other"):
        discover(tmp_path, tmp_path / "lib.py", find_target(src, 4))
    explicit = discover(tmp_path, tmp_path / "lib.py", find_target(src, 4), ["tests/test_lib.py::test_unrelated"])
    assert explicit.node_ids == ["tests/test_lib.py::test_unrelated"]


def pytest_collects(root, *args: str) -> list[str]:
    """The node ids the real pytest collects in `root`."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(root), *args], cwd=root, capture_output=True, text=True, timeout=120)
    return done.stdout.split()


def more_package(root, more: str, tests: str) -> None:
    """more-itertools' layout in small: pkg/more.py (the code) and tests/test_more.py."""
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "more.py").write_text(more)
    (root / "tests").mkdir()
    (root / "tests" / "test_more.py").write_text(tests)


def test_discovery_finds_unittest_methods_through_a_module_alias_as_pytest_collects_them(tmp_path):
    """more-itertools' layout: `FirstTests(TestCase)` methods calling `mi.first(...)`, a TestCase
    base of the same file, a nested Test class; each selected by its own node id, and every id is
    one pytest itself collects (pytest --collect-only, the real one)."""
    more_package(tmp_path, "def first(xs, default=None):\n    return next(iter(xs), default)\n",
        "import unittest\nfrom unittest import TestCase\nimport pkg.more as mi\n\n"
        "class FirstTests(TestCase):\n    def test_many(self):\n        self.assertEqual(mi.first([1, 2]), 1)\n"
        "    def test_default(self):\n        self.assertEqual(mi.first([], 'x'), 'x')\n"
        "    def test_other(self):\n        self.assertTrue(True)\n\n"
        "class Base(unittest.TestCase):\n    pass\n\n"
        "class MoreFirst(Base):\n    def test_via_base(self):\n        assert mi.first('ab') == 'a'\n\n"
        "class Helper:\n    def test_not_collected(self):\n        mi.first([])\n\n"
        "class TestOuter:\n    class TestInner:\n        def test_nested(self):\n            assert mi.first([3]) == 3\n")
    src = (tmp_path / "pkg" / "more.py").read_text()
    found = discover(tmp_path, tmp_path / "pkg" / "more.py", find_target(src, 1))
    f = "tests/test_more.py::"
    assert found.node_ids == [f + "FirstTests::test_many", f + "FirstTests::test_default",
                              f + "MoreFirst::test_via_base", f + "TestOuter::TestInner::test_nested"]
    collected = pytest_collects(tmp_path, "tests/test_more.py")
    assert set(found.node_ids) <= set(collected)
    assert f + "Helper::test_not_collected" not in collected  # pytest agrees: not a test class


def test_doctests_are_tests(tmp_path):
    src = 'def twice(x):\n    """\n    >>> twice(2)\n    4\n    """\n    return 2 * x\n'
    (tmp_path / "m.py").write_text(src)
    found = discover(tmp_path, tmp_path / "m.py", find_target(src, 5))
    assert found.node_ids == ["m.py::m.twice"] and found.doctest_module
    (tmp_path / "pkg" / "sub").mkdir(parents=True)  # in a package, pytest names a doctest by its import name
    for init in ("pkg/__init__.py", "pkg/sub/__init__.py"):
        (tmp_path / init).write_text("")
    (tmp_path / "pkg" / "sub" / "m.py").write_text(src)
    found = discover(tmp_path, tmp_path / "pkg" / "sub" / "m.py", find_target(src, 5))
    assert found.node_ids == ["pkg/sub/m.py::pkg.sub.m.twice"]
    assert found.node_ids[0] in pytest_collects(tmp_path, "--doctest-modules", "pkg/sub/m.py")


def test_discovery_takes_what_the_code_names_not_comments_and_what_pytest_inherits(tmp_path):
    """What the real-projects bench found: a word in a comment or string, or a local variable of the
    name, is not a use (a prime-number test said "the first argument"); a test class's attribute that
    names the target (more-itertools' `functions = (mi.running_min, ...)`) brings the methods that use
    it; a subclass inherits its base's tests (toolz' `TestDefaultDict(TestDict)`), and pytest
    collects them under the subclass. Every id is one pytest itself collects."""
    more_package(tmp_path, "def first(xs):\n    return xs[0]\n",
        "import pkg.more as mi\nfrom pkg.more import first\n\n"
        "def test_comment():\n    # the first argument\n    assert 'first' != 'x'\n\n"
        "def test_local():\n    first = 1\n    assert first == 1\n\n"
        "def test_call():\n    assert first([2]) == 2\n\n"
        "class TestWindows:\n    functions = (mi.first, len)\n\n"
        "    def test_each(self):\n        for f in self.functions:\n            assert f([1])\n\n"
        "    def test_none(self):\n        assert True\n\n"
        "class TestBase:\n    def test_inherited(self):\n        assert mi.first([3]) == 3\n\n"
        "class TestChild(TestBase):\n    pass\n")
    src = (tmp_path / "pkg" / "more.py").read_text()
    found = discover(tmp_path, tmp_path / "pkg" / "more.py", find_target(src, 1))
    f = "tests/test_more.py::"
    assert found.node_ids == [f + "test_call", f + "TestWindows::test_each", f + "TestBase::test_inherited",
                              f + "TestChild::test_inherited"]
    assert set(found.node_ids) <= set(pytest_collects(tmp_path, "tests/test_more.py"))


def test_doctests_of_the_file_that_run_the_target_and_a_packages_init(tmp_path):
    """inflection's `camelize` examples call `underscore`; toolz assigns `f.__doc__` a string; in a
    package's `__init__.py` pytest names a doctest `pkg.f` (not `pkg.__init__.f`)."""
    (tmp_path / "pkg").mkdir()
    src = ('def under(s):\n    return s.lower()\n\n\n'
           'def camel(s):\n    """\n    >>> camel(under("AB"))\n    \'ab\'\n    """\n    return s\n\n\n'
           'def other(s):\n    """\n    >>> other("x")\n    \'x\'\n    """\n    return s\n\n\n'
           'under.__doc__ = """\n>>> under("Q")\n\'q\'\n"""\n')
    (tmp_path / "pkg" / "__init__.py").write_text(src)
    found = discover(tmp_path, tmp_path / "pkg" / "__init__.py", find_target(src, 1))
    assert found.node_ids == ["pkg/__init__.py::pkg.under", "pkg/__init__.py::pkg.camel"] and found.doctest_module
    assert set(found.node_ids) <= set(pytest_collects(tmp_path, "--doctest-modules", "pkg/__init__.py"))


def test_model_cache_loads_once_and_unloads_when_idle(tmp_path):
    script = tmp_path / "s.txt"
    script.write_text("EXIT\n")
    cache, events = ModelCache(), []
    opts = Options(model=f"scripted:{script}")
    first = cache.get(opts, events.append)
    assert cache.get(opts, events.append) is first and events == ["loading model s.txt", f"model loaded (process {first.pid})"]
    time.sleep(0.3)
    assert cache.unload_if_idle(0.1) and not cache.unload_if_idle(0.1)
    assert not first.alive  # unloading stops the model's process
    again = cache.get(opts, events.append)
    assert again is not first and again.alive and len(events) == 4
    cache.close()


def test_workspace_check_runs_doctests_and_reports_relative_lines(tmp_path):
    import sys
    from pathlib import Path
    from server.workspace_check import WorkspaceCheck
    src = 'import os\n\n\ndef twice(x):\n    """\n    >>> twice(2)\n    4\n    """\n    return 3 * x\n'
    (tmp_path / "m.py").write_text(src)
    target = find_target(src, 8)
    check = WorkspaceCheck(tmp_path, tmp_path / "m.py", src, target, discover(tmp_path, tmp_path / "m.py", target),
                           sys.executable)
    bad = check(target.code)
    assert not bad.passed and bad.tests_total == 1 and "Expected:\n    4\nGot:\n    6" in bad.feedback
    good = check(target.code.replace("3 * x", "2 * x"))
    assert good.passed and good.feedback == "All 1 tests pass."
    assert (tmp_path / "m.py").read_text() == src  # the workspace is never written
    assert Path(tmp_path / "m.py").exists()


def test_workspace_check_reports_a_failing_test_function_as_the_dsl_verifier_does(tmp_path):
    """The model was trained on the dsl verifier's feedback: a workspace's pytest run must read the same."""
    import sys
    from dsl import Verifier
    from server.discovery import Tests
    from server.workspace_check import WorkspaceCheck
    src = "def add(a, b):\n    return a - b\n"
    (tmp_path / "calc.py").write_text(src)
    tests = {"test_add": "def test_add():\n    x = 1\n    assert add(0, 0) == 0\n    assert add(x, 2) == 3\n",
             "test_msg": "def test_msg():\n    assert add(1, 2) == 3, 'one and two'\n",
             "test_true": "def test_true():\n    assert add(1, 2) > 2\n",
             "test_none": "def test_none():\n    assert add(1, None) == 1\n"}
    (tmp_path / "test_calc.py").write_text("from calc import add\n\n\n" + "\n\n".join(tests.values()))
    target = find_target(src, 1)
    verifier, seen = Verifier(), {}
    try:
        for name, test_src in tests.items():
            check = WorkspaceCheck(tmp_path, tmp_path / "calc.py", src, target,
                                   Tests([f"test_calc.py::{name}"], test_src), sys.executable)
            ours = check(target.code)
            assert not ours.passed and ours.feedback == verifier.verify(src, test_src).feedback, name
            assert ours.feedback.split("\n")[1:3] == [f"Failed: {name}()", test_src.rstrip().split("\n")[-1].strip()]
            seen[name] = ours.feedback
    finally:
        verifier.close()
    assert seen["test_add"].endswith("assert add(x, 2) == 3\nGot: -1\nExpected: 3")
    assert seen["test_msg"].endswith("\nAssertionError: one and two") and seen["test_true"].endswith("\nAssertionError")
    assert seen["test_none"].endswith("'int' and 'NoneType' (line 2)")


def test_sampling_cut_offs_keep_what_llama_cpp_keeps():
    probs = [0.5, 0.3, 0.15, 0.05]  # best first
    assert kept_by_cutoffs(probs, 1.0, 0.0) == 4  # off
    assert kept_by_cutoffs(probs, 0.75, 0.0) == 2  # 0.5 + 0.3 reach 0.75: the token that crosses stays
    assert kept_by_cutoffs(probs, 0.5, 0.0) == 1
    assert kept_by_cutoffs(probs, 1.0, 0.25) == 3  # at least a quarter of the best's 0.5: 0.15 stays
    assert kept_by_cutoffs(probs, 0.9, 0.0) == 3
    assert kept_by_cutoffs(probs, 0.9, 0.4) == 2  # top-p keeps 3, then min-p 2
    assert kept_by_cutoffs([2.0, 2.0, 1.0], 0.5, 0.0) == 2  # unnormalised: a share of their sum
    assert kept_by_cutoffs([0.9], 0.01, 0.99) == 1
    for bad in ((0.0, 0.1), (1.5, 0.1), (0.9, 1.0), (0.9, -0.1)):
        with pytest.raises(ValueError):
            checked_cutoffs(*bad)


def test_no_workspace_check_outlasts_the_deadline_the_engine_gives(tmp_path):
    """A check begun near a fix's end gets only what is left of it (at least `MIN_RUN_S`), as the
    dsl's task checks do; before, one could run `MIN_LIMIT_S` (3 s) past the fix's budget."""
    import sys
    import time
    from dsl.task_check import MIN_RUN_S
    from server.workspace_check import MIN_LIMIT_S, WorkspaceCheck
    src = "def add(a, b):\n    return a - b\n"
    (tmp_path / "calc.py").write_text(src)
    (tmp_path / "test_calc.py").write_text("from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n")
    target = find_target(src, 1)
    check = WorkspaceCheck(tmp_path, tmp_path / "calc.py", src, target, discover(tmp_path, tmp_path / "calc.py", target),
                           sys.executable, warm=False)
    first = check(target.code)
    assert not first.passed and check.limit("fresh") >= MIN_LIMIT_S
    check.deadline = time.monotonic() + 1.0
    assert 0.5 < check.limit("fresh") <= 1.0
    check.deadline = time.monotonic() - 1.0
    assert check.limit("fresh") == MIN_RUN_S
    late = check(target.code.replace("a - b", "a + b"))  # begun past the end: no time to pass
    assert late.timed_out and not late.passed
