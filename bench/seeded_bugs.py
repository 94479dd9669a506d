"""Seeded single-line bugs for bench/real_projects.py: deterministic from a `random.Random`, each
kept only if a test that calls the function directly then fails.

Kinds (a third of the bugs are of the last three, which the engine's single-edit search cannot
undo in one edit):
  search        one of the search's own edits (dsl.mutate: comparison, arithmetic, boolean, `not`,
                constant, bound): what the search is built to undo
  dropped_line  a one-line statement deleted (an assignment, an augmented assignment, a call)
  changed_call  `f(...)` -> `g(...)`, g another function of the module that the function never names
  two_tokens    two of the search's edits on the same line
"""
from __future__ import annotations

import ast
import random
from pathlib import Path
from typing import Callable

from bench.libraries import parses
from dsl import EditorState
from dsl.mutate import mutations

KINDS = ("search", "dropped_line", "changed_call", "two_tokens")
FAMILIES = {"compare", "binop", "augassign", "boolop", "not", "constant", "bounds"}


def _functions(tree: ast.Module):
    """Top-level functions of the module (the ones a test can call by name; bugs go into the public
    ones: a private helper is reached through others, e.g. toolz's `_restore_curry` by pickle)."""
    return [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _body_lines(fn: ast.AST) -> set[int]:
    """Lines of the function (relative, 1 = def) that hold code: not the def, not the docstring."""
    doc = fn.body[0] if fn.body and isinstance(fn.body[0], ast.Expr) and isinstance(
        getattr(fn.body[0], "value", None), ast.Constant) and isinstance(fn.body[0].value.value, str) else None
    out = set()
    for stmt in ast.walk(fn):
        if isinstance(stmt, ast.stmt) and stmt is not fn and stmt is not doc:
            out.add(stmt.lineno - fn.lineno + 1)
    return out


def _search_edit(code: str, lines: set[int], rng: random.Random, line: int | None = None) -> tuple[str, int] | None:
    muts = [m for m in mutations(code, sorted(lines) if line is None else [line]) if m.operator in FAMILIES]
    rng.shuffle(muts)
    for m in muts:
        new = EditorState.from_code(code).apply(m.command)
        if isinstance(new, EditorState) and parses(new.to_code()) and new.to_code() != code:
            return new.to_code(), m.line
    return None


def _one_edit_away(buggy: str, code: str) -> bool:
    """Whether one of the search's single edits of `buggy` gives back `code` (the fix)."""
    want = ast.dump(ast.parse(code))
    for m in mutations(buggy):
        new = EditorState.from_code(buggy).apply(m.command)
        if isinstance(new, EditorState) and parses(new.to_code()) and ast.dump(ast.parse(new.to_code())) == want:
            return True
    return False


def _dropped_line(fn: ast.AST, code: str, rng: random.Random) -> tuple[str, int] | None:
    lines = code.splitlines(keepends=True)
    blocks = [b for node in ast.walk(fn) for b in (getattr(node, "body", None), getattr(node, "orelse", None))
              if isinstance(b, list) and len(b) > 1]
    choices = [s for b in blocks for s in b if isinstance(s, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr))
               and s.lineno == s.end_lineno and not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    rng.shuffle(choices)
    for s in choices:
        n = s.lineno - fn.lineno  # 0-based within the function
        new = "".join(lines[:n] + lines[n + 1:])
        if parses(new):
            return new, n + 1
    return None


def _changed_call(fn: ast.AST, code: str, module_functions: list[str], rng: random.Random) -> tuple[str, int] | None:
    lines = code.splitlines(keepends=True)
    used = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)} | {fn.name}
    others = [f for f in module_functions if f not in used]
    calls = [c for c in ast.walk(fn) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
             and c.func.lineno == c.func.end_lineno]
    rng.shuffle(calls)
    for c in calls:
        if not others:
            return None
        n = c.func.lineno - fn.lineno
        line = lines[n]
        new_line = line[:c.func.col_offset] + rng.choice(others) + line[c.func.end_col_offset:]
        new = "".join(lines[:n] + [new_line] + lines[n + 1:])
        if parses(new):
            return new, n + 1
    return None


def draw_bugs(lib: Path, modules: list[str], calls: dict[str, list[str]], n: int, rng: random.Random,
              fails: Callable[[list[str], bool], bool]) -> list[dict]:
    """`n` bugs in `lib`'s `modules`: a third (rounded up) of the other kinds in turn, drawn first,
    then `search`; each in a different function that 1..20 tests call directly, each making one of
    those tests fail."""
    candidates = []
    for rel in modules:
        source = (lib / rel).read_text(encoding="utf-8")
        tree = ast.parse(source)
        names = [f.name for f in _functions(tree)]
        for fn in _functions(tree):
            first = min([d.lineno for d in fn.decorator_list] + [fn.lineno])
            key = f"{rel}:{fn.name}:{first}"
            tests = {t.split("[")[0] for t in calls.get(key, [])}  # a parametrized test counts once
            if not fn.name.startswith("_") and 1 <= len(tests) <= 20 and len(_body_lines(fn)) >= 2:
                candidates.append((rel, source, fn, key, names))
    rng.shuffle(candidates)
    # the other kinds first, so that a library with few candidates still has its third of them
    others = n // 3 + (n % 3 == 2)
    plan = [KINDS[1 + i % 3] for i in range(others)] + [KINDS[0]] * (n - others)
    bugs: list[dict] = []
    for kind in plan:
        for candidate in list(candidates):  # a function that cannot take this kind may take another
            rel, source, fn, key, names = candidate
            lines = source.splitlines(keepends=True)
            before = lines[fn.lineno - 1: fn.end_lineno]
            code = "".join(before)
            relative = ast.parse(code).body[0]
            body = _body_lines(relative)
            if kind == "search":
                made = _search_edit(code, body, rng)
            elif kind == "two_tokens":
                one = _search_edit(code, body, rng)
                made = _search_edit(one[0], {one[1]}, rng, one[1]) if one else None
                made = made if made and made[0] != code else None
            elif kind == "dropped_line":
                made = _dropped_line(relative, code, rng)
            else:
                made = _changed_call(relative, code, names, rng)
            if made is None or (kind != "search" and _one_edit_away(made[0], code)):
                continue
            after = made[0].splitlines(keepends=True)
            path = lib / rel
            path.write_text("".join(lines[: fn.lineno - 1] + after + lines[fn.end_lineno:]), encoding="utf-8")
            try:
                ids = calls[key]
                broken = fails(ids, any(t.split("::")[0] in modules for t in ids))
            finally:
                path.write_text(source, encoding="utf-8")
            if broken:
                candidates.remove(candidate)
                bugs.append({"id": f"{rel}:{fn.name}", "file": rel, "function": fn.name, "def_line": fn.lineno,
                             "key": key, "kind": kind, "line": fn.lineno + made[1] - 1, "before": before,
                             "after": after})
                break
    return bugs
