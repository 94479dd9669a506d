"""Edits the error message points at: the targeted families of the edit search (dsl/mutate.py).

The tests' feedback names what went wrong (`name 'x' is not defined`, `'str' object has no
attribute 'lenght'`, a local variable read before assignment); these edits answer exactly that, so
they are tried before the blind families:

    undefined_name  a name the error calls undefined -> the closest known name (a misspelling);
                    a def whose name is close to one the tests call (or the only def) -> renamed
                    to it; a variable or parameter close to one read unassigned -> renamed to it;
                    a parameter the function never reads -> renamed to a name it reads unbound
    missing_import  a stdlib module or name the error calls undefined -> an import at line 1
    attribute_typo  an attribute the error says does not exist -> the closest attribute of that type
    not_callable    a name called that holds no function (`'int' object is not callable`: a builtin
                    shadowed, or the call's name swapped for a variable) -> a builtin of that shape
    initialize      a local read before any assignment (`total += x` with no `total = 0`: the
                    initialization lost) -> `name = <start value>` before the statement that first
                    reads it, and at the top of the function; the value its use suggests first
"""
from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass, field

from .commands import Command
from .mutation_tables import CALLABLE_BUILTINS, STDLIB_MODULES, STDLIB_NAMES, TYPE_ATTRS
from .state import EditorState


@dataclass
class Hints:
    """What the tests' feedback says, for the targeted operators."""
    undefined: set[str] = field(default_factory=set)  # NameError names
    missing_attrs: list[tuple[str, str]] = field(default_factory=list)  # (type name, attribute) of AttributeErrors
    not_callable: bool = False  # a TypeError: something called is no function


def hints_from_feedback(text: str) -> Hints:
    h = Hints()
    h.undefined |= set(re.findall(r"name '([A-Za-z_]\w*)' is not defined", text))
    # UnboundLocalError (3.11+: "cannot access local variable 'x' ...", before: "local variable 'x'
    # referenced before assignment"): read before any assignment, often a misspelt assignment
    h.undefined |= set(re.findall(r"local variable '([A-Za-z_]\w*)'", text))
    h.missing_attrs += re.findall(r"'(\w+)' object has no attribute '([A-Za-z_]\w*)'", text)
    h.not_callable = bool(re.search(r"'\w+' object is not callable", text))
    return h


def indent_of(text: str) -> str:
    """The leading whitespace of a line."""
    return text[: len(text) - len(text.lstrip())]


def swap(line: str, a: int, b: int, new: str) -> str:
    """`line` with UTF-8 byte columns a..b (ast's offsets) replaced by `new`."""
    raw = line.encode()
    return (raw[:a] + new.encode() + raw[b:]).decode()


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def defined_names(tree: ast.Module) -> set[str]:
    """The functions and classes the code defines, anywhere in it."""
    return {d.name for d in ast.walk(tree) if isinstance(d, _DEFS)}


def renames_to_undefined(state: EditorState, tree: ast.Module, hints: Hints):
    """(line, new line) that give a name the error calls undefined to a binding that was meant to
    be it, wherever that binding is (it is seldom where the error is raised):
    - a def close to a name the tests call that the code does not define (a misspelt def), or the
      module's only def when the tests call one undefined name (the def was renamed);
    - an assignment target or parameter close to a name read before any assignment (`ttal = 1`
      with `total` undefined)."""
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    defs = [d for d in tree.body if isinstance(d, _DEFS)]
    defined = defined_names(tree)
    called = sorted(w for w in hints.undefined if w not in defined and w not in bound)
    for d in (x for x in ast.walk(tree) if isinstance(x, _DEFS)):
        for wanted in called:
            alone = len(defs) == 1 and d is defs[0] and len(called) == 1
            if alone or difflib.get_close_matches(d.name, [wanted], n=1, cutoff=0.75):
                line = state.lines[d.lineno - 1]
                at = line.encode().find(d.name.encode(), d.col_offset)
                if at >= 0:
                    yield d.lineno, swap(line, at, at + len(d.name.encode()), wanted)
    yield from _unread_parameters(state, tree, hints)
    for node in ast.walk(tree):
        name = node.id if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) else \
            node.arg if isinstance(node, ast.arg) else None
        if name is None or node.lineno != node.end_lineno:
            continue
        for wanted in sorted(hints.undefined - {name}):
            if difflib.get_close_matches(name, [wanted], n=1, cutoff=0.6):
                line = state.lines[node.lineno - 1]
                yield node.lineno, swap(line, node.col_offset, node.col_offset + len(name.encode()), wanted)


def _unread_parameters(state: EditorState, tree: ast.Module, hints: Hints):
    """A parameter the function never reads, renamed to a name its body reads but nothing binds:
    the parameter was renamed (`def f(filter)` whose body reads `nums`), however unlike the names."""
    for fn in (f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))):
        body = [n for stmt in fn.body for n in ast.walk(stmt)]
        read = {n.id for n in body if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        bound = {n.id for n in body if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        wanted = sorted((hints.undefined & read) - bound)
        for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs:
            if a.arg in read or a.lineno != a.end_lineno:
                continue
            line = state.lines[a.lineno - 1]
            for name in wanted:
                yield a.lineno, swap(line, a.col_offset, a.col_offset + len(a.arg.encode()), name)


def targeted_edits(line: str, nodes: list[ast.AST], known: list[str], hints: Hints, defined: set[str] = frozenset()):
    for node in nodes:
        if hints.not_callable and isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id not in defined:
            # which name was meant is not in the message: the builtins a call most often means
            for new in CALLABLE_BUILTINS:
                if new != node.func.id:
                    yield "not_callable", swap(line, node.func.col_offset, node.func.end_col_offset, new)
        if isinstance(node, ast.Name) and node.id in hints.undefined:
            for new in difflib.get_close_matches(node.id, known, n=3, cutoff=0.6):
                yield "undefined_name", swap(line, node.col_offset, node.end_col_offset, new)
        elif isinstance(node, ast.Attribute):
            for kind, attr in hints.missing_attrs:
                if node.attr == attr:
                    end = node.end_col_offset
                    for new in difflib.get_close_matches(attr, TYPE_ATTRS.get(kind, []), n=3, cutoff=0.6):
                        yield "attribute_typo", swap(line, end - len(attr.encode()), end, new)


# start values, most likely first per use: a product starts at 1, a sum at 0, a collection empty
_STARTS = ("0", "1", "[]", "''", "{}", "set()")
_STARTS_BY_METHOD = {"append": "[]", "extend": "[]", "insert": "[]", "pop": "[]", "add": "set()",
                     "update": "{}", "get": "{}", "items": "{}", "keys": "{}", "values": "{}"}


def _start_values(fn: ast.AST, name: str) -> list[str]:
    """The values `name` may have started with, the one its uses suggest first."""
    first = []
    for node in ast.walk(fn):
        op = node.op if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and \
            node.target.id == name else None
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.BinOp) and \
                isinstance(node.value.left, ast.Name) and node.value.left.id == name:
            op = node.value.op  # total = total * x
        if op is not None:
            first.append("1" if isinstance(op, (ast.Mult, ast.Div, ast.FloorDiv, ast.Pow)) else "0")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == name:
            first += [_STARTS_BY_METHOD[node.attr]] if node.attr in _STARTS_BY_METHOD else []
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == name and \
                isinstance(node.ctx, ast.Store):
            first.append("{}")
    return list(dict.fromkeys(first + list(_STARTS)))


def initializations(state: EditorState, tree: ast.Module, hints: Hints):
    """(line, command): `name = <value>` for a local the error says is read before assignment, as
    the line before the function-level statement that first uses it and as the function's first line."""
    for fn in (f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))):
        stored = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        params = {a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs}
        for name in sorted((hints.undefined & stored) - params):
            uses = [s for s in fn.body if any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(s))]
            at = list(dict.fromkeys([uses[0].lineno, fn.body[0].lineno])) if uses else []
            for n in at:
                for value in _start_values(fn, name):
                    yield n, Command("ADDL", n, f"{indent_of(state.lines[n - 1])}{name} = {value}")


def imports(hints: Hints):
    for name in sorted(hints.undefined):
        if name in STDLIB_MODULES:
            yield Command("ADDL", 1, f"import {name}")
        elif name in STDLIB_NAMES:
            yield Command("ADDL", 1, f"from {STDLIB_NAMES[name]} import {name}")
