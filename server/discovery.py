"""Which tests judge a target: the workspace's own pytest tests that call it, its doctests, or a
test the user names.

* `--test PATH` / the `tests` option: a file, or `file::test_name`, taken as given.
* Otherwise: test files under the workspace root (`test_*.py`, `*_test.py`, skipping virtualenvs,
  `.git` and `node_modules`) and, within them, the test functions whose code (decorators
  included; not comments or strings, not a local variable of that name) names the target, as
  pytest collects them: `test*` functions, and `test*` methods of `Test*` classes
  or of `unittest.TestCase` subclasses whatever their name (more-itertools' `FirstTests(TestCase)`),
  nested classes included. A use through a module alias or an attribute (`mi.first(...)`,
  `obj.first(...)`) counts, so each test is selected by its own node id, never a whole file.
* Doctests: the target's own docstring examples, and those of the other functions and classes of
  its file whose examples call it (`>>> camelize(...)` in one docstring, `underscore(...)` inside).

The result is a list of pytest node ids relative to the root, plus the tests' source text (what
the model is shown as "Tests:").
"""
from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .target import Target

SKIP_DIRS = {".git", ".venv", "venv", "env", "node_modules", "__pycache__", ".tox", ".mypy_cache", ".pytest_cache",
             "site-packages", "build", "dist"}
MAX_FILES = 2000  # files looked at before giving up on a huge tree
MAX_TESTS = 20  # tests run per verification


@dataclass
class Tests:
    node_ids: list[str] = field(default_factory=list)  # pytest node ids, relative to the root
    source: str = ""  # the tests as the model sees them
    doctest_module: bool = False  # node ids include a doctest (pytest needs --doctest-modules)


class NoTests(ValueError):
    pass


def _test_files(root: Path):
    seen = 0
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py")):
                seen += 1
                if seen > MAX_FILES:
                    return
                yield Path(dirpath, name)


def _tests_in(path: Path, name: str) -> list[tuple[str, str]]:
    """(node id suffix, source) of the test functions in `path` that mention `name`."""
    try:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return []
    found = []
    # ast.get_source_segment splits the whole file at every call: on more-itertools' 6,000-line
    # test file that was 47 s of a Fix. Split once; a function's text is its lines, as it spells them.
    lines = text.splitlines(keepends=True)

    def consider(fn: ast.AST, prefix: str, attrs: set[str] = frozenset()) -> None:
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and fn.name.startswith("test"):
            if _uses(fn, name) or (attrs and any(
                    isinstance(n, ast.Attribute) and n.attr in attrs and isinstance(n.value, ast.Name)
                    and n.value.id in ("self", "cls") for n in ast.walk(fn))):
                found.append((prefix + fn.name, "".join(lines[fn.lineno - 1: fn.end_lineno])[fn.col_offset:].rstrip()))

    cases = _testcase_classes(tree)
    top = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}

    def lineage(cls: ast.ClassDef, seen: frozenset = frozenset()) -> list[ast.ClassDef]:
        """The class and its bases defined in this file, bases first: pytest collects inherited tests."""
        out = []
        for b in cls.bases:
            base = top.get(ast.unparse(b).rsplit(".", 1)[-1])
            if base is not None and base.name not in seen and base is not cls:
                out += lineage(base, seen | {cls.name})
        return out + [cls]

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            consider(node, prefix)
            if isinstance(node, ast.ClassDef) and (node.name.startswith("Test") or node.name in cases):
                methods: dict[str, ast.AST] = {}
                attrs: set[str] = set()  # class attributes that name the target (`functions = (mi.first, ...)`)
                for cls in lineage(node):
                    for stmt in cls.body:
                        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                            methods[stmt.name] = stmt
                        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and _uses(stmt, name):
                            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                            attrs |= {t.id for t in targets if isinstance(t, ast.Name)}
                for fn in methods.values():
                    consider(fn, prefix + node.name + "::", attrs)
                visit([n for n in node.body if isinstance(n, ast.ClassDef)], prefix + node.name + "::")

    visit(tree.body, "")
    return found


def _uses(fn: ast.AST, name: str) -> bool:
    """Whether the test's code (not its comments or strings) names `name`: `name(...)`, `mod.name`,
    `obj.name`. A local variable of that name (assigned in the test) is not the target."""
    loads, local = False, False
    for node in ast.walk(fn):
        if isinstance(node, ast.Attribute) and node.attr == name:
            return True
        if isinstance(node, ast.Name) and node.id == name:
            local |= isinstance(node.ctx, ast.Store)
            loads |= isinstance(node.ctx, ast.Load)
        elif isinstance(node, ast.arg) and node.arg == name:
            local = True
    return loads and not local


def _testcase_classes(tree: ast.Module) -> set[str]:
    """Names of the classes in `tree` that subclass `unittest.TestCase` (spelt `TestCase`,
    `unittest.TestCase`, or any base ending in `TestCase`), directly or through a class of the
    same file: pytest collects their `test*` methods whatever the class is called."""
    classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    found: set[str] = set()
    grew = True
    while grew:  # a base defined later in the file, or a chain of them
        grew = False
        for c in classes:
            bases = {ast.unparse(b).rsplit(".", 1)[-1] for b in c.bases}
            if c.name not in found and any(b.endswith("TestCase") or b in found for b in bases):
                found.add(c.name)
                grew = True
    return found


def _doctests(file: Path, target: Target) -> list[tuple[str, bool]]:
    """(qualname, is the target's own) of the doctests in the target's file that run it: its own
    docstring's examples, and another function's or class's examples that call it by name."""
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return [(target.qualname, True)] if ">>>" in "\n".join(target.lines) else []
    calls = re.compile(rf"^\s*(>>>|\.\.\.).*\b{re.escape(target.name)}\s*\(", re.M)
    found: list[tuple[str, bool]] = []
    # `f.__doc__ = """..."""` at module level (toolz does this): pytest collects those examples as f's
    assigned = {t.value.id: stmt.value.value for stmt in tree.body if isinstance(stmt, ast.Assign)
                for t in stmt.targets if isinstance(t, ast.Attribute) and t.attr == "__doc__"
                and isinstance(t.value, ast.Name) and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qual = prefix + node.name
                doc = ast.get_docstring(node, clean=False) or assigned.get(qual, "")
                own = qual == target.qualname
                if ">>>" in doc and (own or calls.search(doc)):
                    found.append((qual, own))
                if isinstance(node, ast.ClassDef):
                    visit(node.body, qual + ".")
    visit(tree.body, "")
    return sorted(found, key=lambda f: not f[1])  # the target's own first


def _import_name(file: Path) -> str:
    """The module's name as pytest imports it (and names its doctests): the file's stem under each
    parent folder that is a package (`more_itertools/more.py` -> `more_itertools.more`)."""
    parts, folder = ([] if file.stem == "__init__" else [file.stem]), file.parent  # a package is named by its folder
    while (folder / "__init__.py").is_file() and folder != folder.parent:
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


def discover(root: str | Path, file: str | Path, target: Target, explicit: list[str] = ()) -> Tests:
    """The tests for `target` in `file` (both under `root`); raises NoTests with advice if none."""
    root, file = Path(root).resolve(), Path(file).resolve()
    out = Tests()
    if explicit:
        for spec in explicit:
            path_part, _, rest = spec.partition("::")
            path = (root / path_part).resolve() if not Path(path_part).is_absolute() else Path(path_part)
            if not path.is_file():
                raise NoTests(f"the test {spec!r} does not exist")
            rel = os.path.relpath(path, root)
            out.node_ids.append(rel + (f"::{rest}" if rest else ""))
            text = path.read_text(encoding="utf-8", errors="replace")
            tests = [src for nid, src in _tests_in(path, target.name) if not rest or nid == rest]
            out.source += "\n\n".join(tests or [text]) + "\n"
        return out
    module = os.path.relpath(file, root)
    for qualname, own in _doctests(file, target):
        out.node_ids.append(f"{module}::{_import_name(file)}.{qualname}")
        out.doctest_module = True
        out.source += "(the doctest examples in the function's docstring)\n" if own else ""
    for path in _test_files(root):
        if path == file:
            continue
        for nid, src in _tests_in(path, target.name):
            if len(out.node_ids) >= MAX_TESTS:
                break
            out.node_ids.append(f"{os.path.relpath(path, root)}::{nid}")
            out.source += src + "\n\n"
    if not out.node_ids:
        raise NoTests(f"no tests found for {target.qualname}: write a pytest test that calls it (test_*.py under "
                      f"the workspace root), add a doctest, or point to a test with the `tests` option")
    out.source = out.source.strip() + "\n"
    return out
