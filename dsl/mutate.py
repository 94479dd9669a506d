"""Single-line mutations of code: the edit search's candidates, each one `dsl` command.

`mutations(code, lines, hints)` lists the edits of the given lines (1-based, in that order), each
a `Mutation(command, operator, line)` whose command is what a person would type (REPW/REPL/DELL/
ADDL). Every candidate is compiled and deduplicated by AST before it is offered, so no test run
is spent on code that does not compile or on a program already tried (`Candidates`).

The operator families (names used in traces and benches), after the fix kinds that established
repair tools use (TBar's templates, PraPR's mutators, GenProg's statement edits) and the one-line
bug kinds ManySStuBs4J counts most often (changed identifier, wrong function name, changed
literal, changed operator, swapped arguments, more/less specific condition):

    undefined_name, missing_import, attribute_typo, not_callable, initialize: what the error
                    message names (dsl/error_edits.py: misspelt names, defs and assignments; imports;
                    attributes; a called name that holds no function; a lost `total = 0`)
    compare         < <= > >= == != swapped; `is`/`is not`, `in`/`not in` negated
    binop           arithmetic (+ - * / // % **) and bitwise (& | ^ << >>) swapped within their group
    augassign       the same for `+=`, `-=`, ...
    boolop          and <-> or
    not             `not` removed from, or put in front of, a condition; a unary minus removed
    constant        an integer +1, -1, 0 <-> 1, negated; True <-> False; [] <-> [[]]
    bounds          off by one: range()/slice/subscript bounds, len(x), name arguments +1 / -1
    call            two arguments swapped; f(x) -> x; a builtin or method swapped within its family
    operand         a - b -> b - a (non-commutative operators); a + b -> a or b
    name            a name swapped for another name the code uses (where it is read or assigned); an
                    attribute for another attribute
    statement       a line deleted, duplicated; `x` -> `return x`; a missing `return name` added (or in
                    place of the last line); a line moved one block out, or into the block before it
"""
from __future__ import annotations

import ast
import builtins
import warnings
from dataclasses import dataclass

from .audit import parse_python
from .commands import Command, line_edit
from .error_edits import (Hints, defined_names, hints_from_feedback, imports, indent_of, initializations,
                          renames_to_undefined, targeted_edits)
from .error_edits import swap as _swap
from .mutation_tables import (BINOP_GROUPS, BINOP_TEXT, COMPARE_TEXT, FAMILIES, NEGATED, NON_COMMUTATIVE,
                              STDLIB_MODULES, alternatives)
from .state import EditorState

__all__ = ["Candidates", "Hints", "Mutation", "hints_from_feedback", "indent_of", "mutations"]


@dataclass(frozen=True)
class Mutation:
    command: Command
    operator: str
    line: int

    def __str__(self) -> str:
        return str(self.command)


class Candidates:
    """Dedup and compile gate: `fresh(code)` is True once for each new program that compiles."""

    def __init__(self, *seen_code: str) -> None:
        self.seen: set[str] = set()
        for code in seen_code:
            self.fresh(code)

    def fresh(self, code: str) -> bool:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                key = ast.dump(ast.parse(code))
                compile(code, "<candidate>", "exec")
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                return False
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def _seg(line: str, node: ast.AST) -> str:
    return line.encode()[node.col_offset:node.end_col_offset].decode()


def _gap_swap(line: str, left: ast.AST, right: ast.AST, old: str, new: str) -> str | None:
    """Replace the operator `old` found between two single-line nodes by `new`."""
    raw = line.encode()
    gap = raw[left.end_col_offset:right.col_offset].decode()
    core = gap.strip(" ()")
    if core != old:
        return None
    return _swap(line, left.end_col_offset, right.col_offset, gap.replace(old, new, 1))


_TIGHT = (ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.Attribute, ast.Await)


def _in_context(node: ast.AST, text: str) -> str:
    """`text` to stand where `node` stands: in parentheses when an operator around it would bind
    tighter than the new text does (`len(d) * 2` -> `(len(d) - 1) * 2`, not `len(d) - 1 * 2`)."""
    parent = getattr(node, "_coedit_parent", None)
    tight = isinstance(parent, _TIGHT) or (isinstance(parent, (ast.Call, ast.Subscript))
                                           and node in (getattr(parent, "func", None), getattr(parent, "value", None)))
    try:
        atomic = isinstance(ast.parse(text, mode="eval").body, (ast.Name, ast.Constant, ast.Call, ast.Subscript,
                                                                 ast.Attribute, ast.List, ast.Tuple))
    except SyntaxError:
        atomic = False
    return f"({text})" if tight and not atomic else text


def _names(tree: ast.Module) -> tuple[list[str], list[str]]:
    """(names the code binds or reads, attributes it uses), sorted; builtins read are included."""
    names, attrs = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute):
            attrs.add(node.attr)
    return sorted(names), sorted(attrs)


def _on_line(tree: ast.Module, n: int) -> list[ast.AST]:
    """Nodes that start and end on line n, outermost first."""
    return [node for node in ast.walk(tree)
            if getattr(node, "lineno", None) == n and getattr(node, "end_lineno", None) == n]


def _expression_edits(line: str, nodes: list[ast.AST], names: list[str], attrs: list[str]):
    """(operator, new line) for the token-level families on one line."""
    for node in nodes:
        if isinstance(node, ast.Compare):
            parts = [node.left, *node.comparators]
            for op, left, right in zip(node.ops, parts, parts[1:]):
                if type(op) in COMPARE_TEXT:
                    for new in alternatives(COMPARE_TEXT[type(op)], COMPARE_TEXT.values()):
                        if out := _gap_swap(line, left, right, COMPARE_TEXT[type(op)], new):
                            yield "compare", out
                elif type(op) in NEGATED and (out := _gap_swap(line, left, right, *NEGATED[type(op)])):
                    yield "compare", out
        elif isinstance(node, ast.BinOp):
            group = next(g for g in BINOP_GROUPS if type(node.op) in g)
            for new in alternatives(group[type(node.op)], group.values()):
                if out := _gap_swap(line, node.left, node.right, group[type(node.op)], new):
                    yield "binop", out
            if isinstance(node.op, NON_COMMUTATIVE):
                sym = BINOP_TEXT[type(node.op)]
                left, right = (_in_context(node, _seg(line, x)) for x in (node.left, node.right))
                yield "operand", _swap(line, node.col_offset, node.end_col_offset,
                                       _in_context(node, f"{right} {sym} {left}"))
            yield "operand", _swap(line, node.col_offset, node.end_col_offset, _in_context(node, _seg(line, node.left)))
            yield "operand", _swap(line, node.col_offset, node.end_col_offset, _in_context(node, _seg(line, node.right)))
        elif isinstance(node, ast.BoolOp):
            old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
            for left, right in zip(node.values, node.values[1:]):
                if out := _gap_swap(line, left, right, old, new):
                    yield "boolop", out
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub, ast.Invert)):
            yield "not", _swap(line, node.col_offset, node.end_col_offset, _in_context(node, _seg(line, node.operand)))
        elif isinstance(node, ast.Constant):
            yield from _constant_edits(line, node)
        elif isinstance(node, ast.List) and not node.elts:
            yield "constant", _swap(line, node.col_offset, node.end_col_offset, "[[]]")
        elif isinstance(node, ast.Call):
            yield from _call_edits(line, node)
        elif isinstance(node, ast.Subscript):
            yield from _bound_edits(line, [node.slice] if not isinstance(node.slice, ast.Tuple) else node.slice.elts)
        elif isinstance(node, ast.Name):  # read, or assigned: `lds = count + 1` meant `count = ...`
            for new in names:
                if new != node.id:
                    yield "name", _swap(line, node.col_offset, node.end_col_offset, new)
        elif isinstance(node, ast.Attribute):
            end = node.end_col_offset
            start = end - len(node.attr.encode())
            for new in attrs:
                if new != node.attr:
                    yield "name", _swap(line, start, end, new)
        elif isinstance(node, ast.AugAssign) and type(node.op) in BINOP_TEXT:
            group = next(g for g in BINOP_GROUPS if type(node.op) in g)
            for new in alternatives(group[type(node.op)], group.values()):
                if out := _gap_swap(line, node.target, node.value, group[type(node.op)] + "=", new + "="):
                    yield "augassign", out


def _constant_edits(line: str, node: ast.Constant):
    v = node.value
    if isinstance(v, bool):
        yield "constant", _swap(line, node.col_offset, node.end_col_offset, str(not v))
    elif isinstance(v, int) and _seg(line, node).isdigit():  # plain decimals: 0x10 or 1_000 stay as written
        for new in dict.fromkeys([v + 1, v - 1, 1 - v if v in (0, 1) else -v]):
            yield "constant", _swap(line, node.col_offset, node.end_col_offset, str(new))


def _condition_edits(line: str, tree: ast.Module, n: int, names: list[str]):
    """`not` put in front of an if/while/elif condition on line n; a constant condition (`while
    True`) replaced by a name the code uses."""
    for stmt in ast.walk(tree):
        test = getattr(stmt, "test", None)
        if not isinstance(stmt, (ast.If, ast.While)) or test is None or test.lineno != n or test.end_lineno != n:
            continue
        seg = _seg(line, test)
        # one comparison negates by its operator (`is not` -> `is`: the comparison family has every
        # negation); `not (a is not b)` would be the same fix, found first and kept, in a worse spelling
        single = isinstance(test, ast.Compare) and len(test.ops) == 1
        if not single and not (isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)):
            atomic = isinstance(test, (ast.Name, ast.Call, ast.Attribute, ast.Subscript, ast.Constant))
            yield "not", _swap(line, test.col_offset, test.end_col_offset, f"not {seg}" if atomic else f"not ({seg})")
        if isinstance(test, ast.Constant):
            for name in names:
                yield "name", _swap(line, test.col_offset, test.end_col_offset, name)


def _bound_edits(line: str, exprs: list[ast.AST]):
    for e in exprs:
        if isinstance(e, ast.Slice):
            yield from _bound_edits(line, [x for x in (e.lower, e.upper) if x is not None])
        elif e is not None and not isinstance(e, ast.Constant) and getattr(e, "lineno", 0) == getattr(e, "end_lineno", -1):
            seg = _seg(line, e)
            for d in ("+ 1", "- 1"):
                yield "bounds", _swap(line, e.col_offset, e.end_col_offset, _in_context(e, f"{seg} {d}"))


def _call_edits(line: str, node: ast.Call):
    fname = node.func.id if isinstance(node.func, ast.Name) else node.func.attr if isinstance(node.func, ast.Attribute) else ""
    args = [a for a in node.args if not isinstance(a, ast.Starred)]
    if fname == "range" or fname not in dir(builtins):
        yield from _bound_edits(line, [a for a in args if fname == "range" or isinstance(a, ast.Name)])
    if fname == "len":
        for d in ("+ 1", "- 1"):
            yield "bounds", _swap(line, node.col_offset, node.end_col_offset, _in_context(node, f"{_seg(line, node)} {d}"))
    if fname == "range" and len(args) == 1:
        yield "bounds", _swap(line, args[0].col_offset, args[0].end_col_offset, f"1, {_seg(line, args[0])}")
    for i in range(len(args)):
        for j in range(i + 1, len(args)):
            a, b = args[i], args[j]
            if a.end_col_offset <= b.col_offset:
                raw = line.encode()
                out = (raw[:a.col_offset] + raw[b.col_offset:b.end_col_offset] + raw[a.end_col_offset:b.col_offset]
                       + raw[a.col_offset:a.end_col_offset] + raw[b.end_col_offset:]).decode()
                yield "call", out
    if len(node.args) == 1 and not node.keywords and not isinstance(node.args[0], ast.Starred):
        yield "call", _swap(line, node.col_offset, node.end_col_offset, _in_context(node, _seg(line, node.args[0])))
    for family in FAMILIES:
        if fname in family:
            end = node.func.end_col_offset
            for new in family:
                if new != fname:
                    yield "call", _swap(line, end - len(fname.encode()), end, new)


def _statement_edits(state: EditorState, tree: ast.Module, n: int):
    """(operator, command) for the line-level family on line n."""
    line = state.lines[n - 1]
    if not line.strip() or line.lstrip().startswith(("def ", "async def ", "class ", "@")):
        return
    yield "statement", Command("DELL", n)
    stmt = next((s for s in ast.walk(tree) if isinstance(s, ast.stmt) and s.lineno == n), None)
    if stmt is not None and stmt.end_lineno == n and not isinstance(stmt, (ast.If, ast.For, ast.While, ast.With,
                                                                               ast.Try, ast.Return)):
        yield "statement", Command("ADDL", n + 1, line)
    if isinstance(stmt, ast.Expr) and stmt.end_lineno == n:
        yield "statement", Command("REPL", n, f"{indent_of(line)}return {line.strip()}")
    if stmt is not None and stmt.end_lineno == n:
        for indent in _indent_moves(state, stmt):
            yield "statement", Command("REPL", n, indent + line.lstrip())


_BLOCKS = (ast.For, ast.AsyncFor, ast.While, ast.If, ast.With, ast.AsyncWith, ast.Try)


def _indent_moves(state: EditorState, stmt: ast.stmt):
    """The indentation a one-line statement would have one block out (a `return` inside the loop
    that should follow it) or at the end of the block just before it (a line that should be in the
    loop). Only the last statement of a block can move out, and the compile gate drops the rest."""
    parent = getattr(stmt, "_coedit_parent", None)
    if isinstance(parent, _BLOCKS) and stmt in (parent.body + parent.orelse)[-1:]:
        yield indent_of(state.lines[parent.lineno - 1])
    siblings = getattr(parent, "body", None) or []
    before = siblings[siblings.index(stmt) - 1] if stmt in siblings[1:] else None
    if isinstance(before, _BLOCKS):
        inner = (before.orelse or before.body)[-1]
        yield indent_of(state.lines[inner.lineno - 1])


def _missing_returns(state: EditorState, tree: ast.Module, lines: list[int]):
    """`return name` after the last line of a function that has no return, for its bound names."""
    for fn in (f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))):
        if any(isinstance(x, ast.Return) and x.value is not None for x in ast.walk(fn)):
            continue
        last = fn.body[-1]
        if last.end_lineno not in lines and fn.lineno not in lines:
            continue
        indent = indent_of(state.lines[fn.body[0].lineno - 1])
        bound = [a.arg for a in fn.args.args] + sorted({t.id for x in ast.walk(fn) if isinstance(x, ast.Assign)
                                                       for t in x.targets if isinstance(t, ast.Name)})
        for name in dict.fromkeys(reversed(bound)):
            yield last.end_lineno, Command("ADDL", last.end_lineno + 1, f"{indent}return {name}")
            if last.lineno == last.end_lineno and not isinstance(last, _BLOCKS) and len(fn.body) > 1:
                # the line that returned was lost in place of this one (often a line that cannot run)
                yield last.end_lineno, Command("REPL", last.end_lineno, f"{indent}return {name}")


def mutations(code: str, lines: list[int] | None = None, hints: Hints | None = None,
              order: tuple[str, ...] | None = None) -> list[Mutation]:
    """Single-line edits of `code` at `lines` (all lines if None), line by line in the given order
    and, within a line, by operator family in `order` (default `ORDER`). Not yet deduplicated or
    compiled: `Candidates` does that as they are tried."""
    state = EditorState.from_code(code)
    tree = parse_python(code)
    hints = hints or Hints()
    order = order or ORDER
    lines = [n for n in (lines or range(1, len(state.lines) + 1)) if 1 <= n <= len(state.lines)]
    out: list[Mutation] = [Mutation(c, "missing_import", 1) for c in imports(hints)]
    if tree is None:  # a syntax error: only line-level edits apply
        for n in lines:
            out += [Mutation(c, op, n) for op, c in _statement_edits(state, ast.Module([], []), n)]
        return out
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            child._coedit_parent = parent
    names, attrs = _names(tree)
    known = sorted(set(names) | set(dir(builtins)) | set(STDLIB_MODULES))
    defined = defined_names(tree)
    for n, new in renames_to_undefined(state, tree, hints):
        if new != state.lines[n - 1]:
            out.append(Mutation(line_edit(n, state.lines[n - 1], new), "undefined_name", n))
    out += [Mutation(cmd, "initialize", n) for n, cmd in initializations(state, tree, hints)]
    returns = {}
    for n, cmd in _missing_returns(state, tree, lines):
        returns.setdefault(n, []).append(Mutation(cmd, "statement", n))
    for n in lines:
        line = state.lines[n - 1]
        nodes = _on_line(tree, n)
        by_op: dict[str, list[Mutation]] = {}
        edits = [*targeted_edits(line, nodes, known, hints, defined), *_expression_edits(line, nodes, names, attrs),
                 *_condition_edits(line, tree, n, names)]
        for op, new in edits:
            if new != line and "\n" not in new:
                by_op.setdefault(op, []).append(Mutation(line_edit(n, line, new), op, n))
        for op, cmd in _statement_edits(state, tree, n):
            by_op.setdefault(op, []).append(Mutation(cmd, op, n))
        by_op.setdefault("statement", []).extend(returns.get(n, []))
        for op in order:
            out += by_op.get(op, [])
    return out


# within a line: what the error names first, then families with few candidates per site
ORDER = ("undefined_name", "initialize", "attribute_typo", "missing_import", "not_callable", "boolop", "not",
         "compare", "augassign", "binop", "constant", "bounds", "call", "operand", "statement", "name")
