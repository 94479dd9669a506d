"""Fix in real libraries from PyPI source distributions (pip's cache or index; nothing else from the
network): more-itertools 11.2.1 (unittest classes, a module alias, doctests, a 5,600-line module)
and inflection 0.5.1 (parametrized pytest functions, doctests in a package's __init__).

The warm workspace runner and a fresh pytest give the same answer on the same edits; `coedit fix`
and the real language server fix more-itertools' `first()` through its own tests.
"""
from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from server.discovery import discover
from server.target import find_target
from server.workspace_check import WorkspaceCheck

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench/ is not an installed package
from bench.libraries import code_edits, sdist, unpack  # noqa: E402
ADDRESS = re.compile(r"0x[0-9a-f]+")
FIRST_LINE = 272  # more_itertools/more.py: `if default is _marker:` in first()


def unpacked(name: str, version: str, dest: Path) -> Path:
    return unpack(sdist(name, version), dest / "src")


@pytest.fixture(scope="module")
def more_itertools(tmp_path_factory) -> Path:
    return unpacked("more-itertools", "11.2.1", tmp_path_factory.mktemp("mi"))


@pytest.fixture(scope="module")
def inflection(tmp_path_factory) -> Path:
    return unpacked("inflection", "0.5.1", tmp_path_factory.mktemp("inflection"))


def flipped(lib: Path) -> Path:
    """A copy of more-itertools with first()'s `is` flipped to `is not` (the issue's bug)."""
    copy = lib.parent / "flipped"
    if not copy.exists():
        shutil.copytree(lib, copy)
        flip(copy / "more_itertools" / "more.py", FIRST_LINE)
    return copy


def flip(path: Path, line: int) -> None:
    """`if default is _marker:` at `line` (1-based) of `path` becomes `is not`."""
    lines = path.read_text().splitlines(keepends=True)
    assert lines[line - 1].strip() == "if default is _marker:"
    lines[line - 1] = lines[line - 1].replace(" is _marker", " is not _marker")
    path.write_text("".join(lines))


def coedit_fix(root: Path, spec: str, out: Path) -> dict:
    """`coedit fix SPEC --apply --proposers search --json OUT` in `root`, as a user runs it."""
    run = subprocess.run([str(Path(sys.executable).with_name("coedit")), "fix", spec, "--apply", "--proposers", "search",
                          "--json", str(out)], cwd=root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(out.read_text())


def agree(root: Path, rel: str, def_line: int, edits: int) -> int:
    """Check the function at `def_line` as it is and after `edits` of the search's single edits, warm
    and fresh; assert the two answers are the same; return how many the warm runner answered."""
    path = root / rel
    source = path.read_text()
    target = find_target(source, def_line - 1)
    tests = discover(root, path, target)
    warm = WorkspaceCheck(root, path, source, target, tests, sys.executable, warm=True)
    fresh = WorkspaceCheck(root, path, source, target, tests, sys.executable, warm=False)
    codes = code_edits(target, source, edits)
    assert len(codes) == edits + 1
    try:
        for code in codes:
            a, b = warm(code), fresh(code)
            # object addresses (`<object object at 0x7f...>`) differ between any two processes
            assert (a.passed, a.tests_passed, a.tests_total, ADDRESS.sub("0x…", a.feedback)) == \
                (b.passed, b.tests_passed, b.tests_total, ADDRESS.sub("0x…", b.feedback)), code
            assert [(t.source, t.status, ADDRESS.sub("0x…", t.message)) for t in a.tests] == \
                [(t.source, t.status, ADDRESS.sub("0x…", t.message)) for t in b.tests]
        assert fresh.warm_checks == 0 and warm.checks == len(codes)
        return warm.warm_checks
    finally:
        warm.close()


def test_warm_and_fresh_checks_agree_on_more_itertools_unittest_classes_and_doctests(more_itertools):
    root = flipped(more_itertools)
    assert agree(root, "more_itertools/more.py", FIRST_LINE - 19, edits=6) == 7  # def first(...) is 19 lines up


def test_warm_and_fresh_checks_agree_on_inflection_parametrized_tests(inflection):
    source = (inflection / "inflection" / "__init__.py").read_text()
    def_line = 1 + next(i for i, line in enumerate(source.splitlines()) if line.startswith("def underscore("))
    assert agree(inflection, "inflection/__init__.py", def_line, edits=5) == 6


def test_the_first_check_records_which_lines_each_test_ran(more_itertools):
    root = flipped(more_itertools)
    path = root / "more_itertools" / "more.py"
    source = path.read_text()
    target = find_target(source, FIRST_LINE - 1)
    check = WorkspaceCheck(root, path, source, target, discover(root, path, target), sys.executable)
    try:
        first = check(target.code)
    finally:
        check.close()
    assert first.coverage is not None and len(first.coverage) == len(first.tests) == 5
    flipped_line = FIRST_LINE - target.start  # the function's own numbering, 1 = def
    ran = {t.source: lines for t, lines in zip(first.tests, first.coverage)}
    failing = [t.source for t in first.tests if t.status != "pass"]
    assert failing and all(flipped_line in ran[name] for name in failing)  # each failing test ran the `if`
    assert flipped_line not in ran["test_many"] and flipped_line - 1 in ran["test_many"]  # returned from the loop


def test_coedit_fix_fixes_more_itertools_first_through_its_own_tests(more_itertools, tmp_path):
    root = tmp_path / "mi"
    shutil.copytree(flipped(more_itertools), root)
    got = coedit_fix(root, f"more_itertools/more.py:{FIRST_LINE}", tmp_path / "fix.json")
    assert got["status"] == "fixed" and got["applied"] and got["fixed_by"] == "search"
    assert {f"tests/test_more.py::FirstTests::{t}" for t in ("test_many", "test_one", "test_empty", "test_default")} \
        <= set(got["tests"])
    assert got["warm_checks"] >= 1 and got["warm_checks"] == got["checks"]
    assert "if default is _marker:" in (root / "more_itertools" / "more.py").read_text().splitlines()[FIRST_LINE - 1]
    check = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_more.py",
                            "-k", "FirstTests"], cwd=root, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout[-2000:]


def test_a_method_is_a_target_like_a_function(more_itertools, tmp_path):
    """peekable.peek with its `is` flipped: the search sees the method at column 0, the warm runner
    compiles the edit inside its class, and the fix lands at the method's indentation."""
    root = tmp_path / "mi"
    shutil.copytree(more_itertools, root)
    more = root / "more_itertools" / "more.py"
    lines = more.read_text().splitlines()
    line = next(i for i, text in enumerate(lines) if text.startswith("    def peek(self, default=_marker):")) + 11
    flip(more, line + 1)
    got = coedit_fix(root, f"more_itertools/more.py:{line + 1}", tmp_path / "fix.json")
    assert got["status"] == "fixed" and got["warm_checks"] == got["checks"] > 1
    assert "tests/test_more.py::PeekableTests::test_peek_default" in got["tests"]
    assert more.read_text().splitlines()[line] == "                if default is _marker:"


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "server"], server_env=None))
async def client(lsp_client: LanguageClient, more_itertools, tmp_path):
    root = tmp_path / "mi"
    shutil.copytree(flipped(more_itertools), root)
    lsp_client.applied = []

    @lsp_client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        lsp_client.applied.extend(params.edit.document_changes or [])
        return types.ApplyWorkspaceEditResult(applied=True)

    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("neovim"), root_uri=root.as_uri(),
        initialization_options={"proposers": ["search"]},
        workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="mi")]))
    lsp_client.root = root
    yield
    await lsp_client.shutdown_session()


@pytest.mark.asyncio
async def test_the_language_server_fixes_more_itertools_first(client):
    path = client.root / "more_itertools" / "more.py"
    uri, text = path.as_uri(), path.read_text()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))
    started = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="coedit.fix", arguments=[uri, FIRST_LINE - 1]))
    assert started == {"started": True}
    for _ in range(1200):
        ends = [r for rs in client.progress_reports.values() for r in rs if isinstance(r, types.WorkDoneProgressEnd)]
        if ends:
            break
        await asyncio.sleep(0.1)
    assert ends and ends[0].message.startswith("Fixed first: fixed by search"), ends
    (change,) = client.applied
    assert change.text_document.version == 1
    (edit,) = change.edits  # one minimal edit in a 5,600-line file: the flipped line
    assert edit.range.start.line == FIRST_LINE - 1 and edit.range.end.line <= FIRST_LINE
    assert "is _marker" in edit.new_text and "not" not in edit.new_text
