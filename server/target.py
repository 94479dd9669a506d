"""What to fix: the function under the cursor (or the one holding a selection), as editor lines.

The model edits only the target's lines (DSL line 1 is the `def` line, decorators excluded);
`Target.splice` puts edited lines back into the file. A file that does not parse (the bug may be a
syntax error) still has targets: then a function is found by indentation from its `def` line.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_DEF = re.compile(r"^(\s*)(async\s+)?def\s+([A-Za-z_]\w*)\s*\(")


@dataclass(frozen=True)
class Target:
    name: str  # the function's name
    qualname: str  # Class.method for methods
    start: int  # 0-based line of the `def`
    end: int  # 0-based, exclusive
    lines: tuple[str, ...]  # the file's lines start..end, without line ends

    @property
    def code(self) -> str:
        return "\n".join(self.lines) + "\n"

    @property
    def indent(self) -> str:
        """The `def` line's indentation: a method's class body, "" for a module-level function."""
        first = self.lines[0] if self.lines else ""
        return first[: len(first) - len(first.lstrip())]

    @property
    def view(self) -> str:
        """The code as the engine and the model see it: a method without its class's indentation,
        so that it parses on its own (the search compiles every candidate; the model was trained
        on functions at column 0). `from_view` puts the indentation back."""
        n = len(self.indent)
        return "\n".join(line[n:] if line.startswith(self.indent) else line for line in self.lines) + "\n"

    def from_view(self, code: str) -> str:
        """`code` in the engine's view back at the file's indentation. A line that lacked it in the
        file (inside a string that starts further left) and is still there is left as it was."""
        if not self.indent:
            return code
        left = {line for line in self.lines if line.strip() and not line.startswith(self.indent)}
        out = [line if not line.strip() or line in left else self.indent + line for line in code.split("\n")]
        return "\n".join(out)

    def splice(self, source: str, new_code: str) -> str:
        """`source` with this target's lines replaced by `new_code`'s (line ends kept as the file's)."""
        eol = "\r\n" if "\r\n" in source else "\n"
        lines = source.splitlines(keepends=True)
        new = [line + eol for line in new_code.replace("\r\n", "\n").rstrip("\n").split("\n")] if new_code.strip() else []
        if self.end == len(lines) and lines and not lines[-1].endswith(("\n", "\r")) and new:
            new[-1] = new[-1][: -len(eol)]  # the file had no final newline: keep it that way
        return "".join(lines[: self.start] + new + lines[self.end:])


def find_target(source: str, line: int, end_line: int | None = None) -> Target | None:
    """The innermost function containing lines line..end_line (0-based), or None."""
    end_line = line if end_line is None else end_line
    lines = source.splitlines()
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return _by_indentation(lines, line, end_line)
    best: tuple[ast.AST, str] | None = None

    def visit(node: ast.AST, prefix: str) -> None:
        nonlocal best
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if child.lineno - 1 <= line and end_line <= child.end_lineno - 1:
                    best = (child, prefix + child.name)
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)
    visit(tree, "")
    if best is None:
        return None
    node, qual = best
    start, end = node.lineno - 1, node.end_lineno
    return Target(node.name, qual, start, end, tuple(lines[start:end]))


def _by_indentation(lines: list[str], line: int, end_line: int) -> Target | None:
    """For a file that does not parse: the nearest `def` at or above `line` whose indented body
    (up to the next line as little indented as the `def`) contains line..end_line."""
    for start in range(min(line, len(lines) - 1), -1, -1):
        m = _DEF.match(lines[start])
        if not m:
            continue
        indent = len(m.group(1).expandtabs())
        end = start + 1
        while end < len(lines):
            text = lines[end].expandtabs()
            if text.strip() and len(text) - len(text.lstrip()) <= indent and not text.lstrip().startswith((")", "]", "}")):
                break
            end += 1
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1  # trailing blank lines belong to no one
        if end_line < end:
            return Target(m.group(3), m.group(3), start, end, tuple(lines[start:end]))
        return None
    return None
