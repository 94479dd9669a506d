"""The Chain-of-Edits command language: parsing, the same grammar as GBNF, and edit scripts.

One command per turn, 1-based line numbers, text after `>>>` taken raw (indentation kept):

    DELL n                  delete line n
    ADDL n >>>text          insert a line at n (later lines shift down; n may be one past the end)
    REPL n >>>text          replace line n
    REPW n >>>old >>>new    replace every occurrence of `old` in line n with `new`
    EXIT                    stop; the code as it stands is judged

Tolerated around a command, and nothing else: leading whitespace, an optional `### ` prefix,
trailing newlines, and trailing spaces/tabs after `DELL n` and `EXIT`. In `REPW` the first `>>>`
preceded by a space ends the old text, so the old text cannot contain `>>>`; the new text can.

`parse` never raises: a malformed command comes back as a `ParseError` whose `message` is what the
model is shown. `GRAMMAR_GBNF` accepts exactly the strings `parse` accepts (a property test checks
it), so grammar-constrained decoding can only produce valid commands.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Literal, Sequence

TEMPLATES = "DELL n | ADDL n >>>text | REPL n >>>text | REPW n >>>old >>>new | EXIT"
MAX_LINE_NUMBER = 99999  # five digits, as in the grammar

Op = Literal["DELL", "ADDL", "REPL", "REPW", "EXIT"]


@dataclass(frozen=True)
class Command:
    op: Op
    line: int = 0  # 1-based; 0 for EXIT
    text: str = ""  # ADDL/REPL: the new line; REPW: the new text
    old: str = ""  # REPW only

    def __str__(self) -> str:
        """The canonical spelling, which `parse` maps back to an equal `Command`."""
        if self.op == "EXIT":
            return "EXIT"
        if self.op == "DELL":
            return f"DELL {self.line}"
        if self.op == "REPW":
            return f"REPW {self.line} >>>{self.old} >>>{self.text}"
        return f"{self.op} {self.line} >>>{self.text}"


@dataclass(frozen=True)
class ParseError:
    message: str  # shown to the model verbatim; short and exact

    def __bool__(self) -> bool:  # so `if cmd := parse(...)` reads naturally
        return False


_NUM = r"[1-9][0-9]{0,4}"
_HEAD = re.compile(r"(?:### )?(DELL|ADDL|REPL|REPW|EXIT)(.*)", re.S)
_BARE = re.compile(rf" ({_NUM})[ \t]*")  # after DELL
_TEXT = re.compile(rf" ({_NUM}) >>>(.*)", re.S)  # after ADDL/REPL/REPW


def _error(reason: str) -> ParseError:
    return ParseError(f"Invalid command: {reason}. Use one of: {TEMPLATES}")


def parse(raw: str) -> Command | ParseError:
    """Parse one model turn into a `Command`, or explain in one line why it is not one."""
    if not isinstance(raw, str):
        return _error("not text")
    s = raw.lstrip(" \t\r\n").rstrip("\r\n")
    if not s:
        return _error("empty")
    if "\n" in s or "\r" in s:
        return _error("one command per turn, on one line")
    head = _HEAD.fullmatch(s)
    if head is None:
        word = s.split(" ", 1)[0][:20]
        return _error(f"unknown command {word!r}")
    op, rest = head.group(1), head.group(2)
    if op == "EXIT":
        if rest.strip(" \t"):
            return _error("EXIT takes no arguments")
        return Command("EXIT")
    if op == "DELL":
        m = _BARE.fullmatch(rest)
        if m is None:
            return _error("DELL needs one line number (1-99999)")
        return Command("DELL", int(m.group(1)))
    m = _TEXT.fullmatch(rest)
    if m is None:
        return _error(f"{op} needs a line number (1-99999), a space, then >>>")
    line, text = int(m.group(1)), m.group(2)
    if op != "REPW":
        return Command(op, line, text)  # type: ignore[arg-type]
    cut = text.find(">>>")
    if cut < 1 or text[cut - 1] != " ":
        return _error("REPW needs ' >>>' between the old and the new text")
    old, new = text[: cut - 1], text[cut + 3 :]
    if not old:
        return _error("REPW needs non-empty old text")
    return Command("REPW", line, new, old)


# The same language as `parse`, for llama.cpp's grammar-constrained sampling. `old` is a non-empty
# string without `>>>`: runs of at most two `>` between other characters, optionally ending in one.
GRAMMAR_GBNF = r"""root ::= [ \t\r\n]* "### "? command [\r\n]*
command ::= dell | exit | addl | repl | repw
dell ::= "DELL " num [ \t]*
exit ::= "EXIT" [ \t]*
addl ::= "ADDL " num " >>>" text
repl ::= "REPL " num " >>>" text
repw ::= "REPW " num " >>>" old " >>>" text
num ::= [1-9] ([0-9] ([0-9] ([0-9] [0-9]?)?)?)?
text ::= [^\r\n]*
old ::= oldchunk+ oldtail? | oldtail
oldchunk ::= [^>\r\n] | ">" [^>\r\n] | ">>" [^>\r\n]
oldtail ::= ">" | ">>"
"""


def can_extend(prefix: str, lines: Sequence[str | None] | None = None) -> bool:
    """Whether some continuation makes `prefix` a command in canonical spelling (no leading blanks,
    no `### `, nothing after the command): what grammar-constrained decoding lets a model write.
    A backend allows a token if `can_extend(text + token)`, and the end of turn if `can_end(text)`,
    so a constrained model can only produce valid commands.

    With the code's `lines` (None for a line whose text is unknown), also one that applies to it:
    line numbers in range, and a REPW's old text found on its line. A model that names a line
    that is not there, or a word that is not on the line, wastes a turn on an error; measured on
    the shipped model, that was every tenth command (docs/results.md)."""
    for word in ("DELL", "ADDL", "REPL", "REPW", "EXIT"):
        if len(prefix) <= len(word):
            if word.startswith(prefix):
                targets = _targets(word, lines)  # only for words still possible: REPW's is a set
                if targets is None or targets:
                    return True
            continue
        if not prefix.startswith(word) or word == "EXIT":
            continue
        targets = _targets(word, lines)
        rest = prefix[len(word):]
        if rest[0] != " ":
            return False
        number = re.match(r"[1-9][0-9]{0,4}", rest[1:])
        if not number:
            return rest == " " and (targets is None or bool(targets))
        digits, after = number.group(), rest[1 + number.end():]
        if targets is not None and not (int(digits) in targets if after else
                                        any(str(n).startswith(digits) for n in targets)):
            return False
        if word == "DELL" or not after:
            return not after  # DELL ends after its number; others may still add digits or " >>>"
        if len(after) <= 4:
            return " >>>".startswith(after)
        text = after[4:]
        if not after.startswith(" >>>") or "\n" in text or "\r" in text:
            return False
        cut = text.find(">>>")
        if word != "REPW":
            return True
        if cut != -1 and (cut < 2 or text[cut - 1] != " "):
            return False
        line = lines[int(digits) - 1] if lines is not None else None
        if line is None:
            return True
        if cut != -1:
            return text[: cut - 1] in line
        # still writing the old text, or its first characters plus the start of " >>>"
        return text in line or any(text.endswith(sep) and text[: -len(sep)] and text[: -len(sep)] in line
                                   for sep in (" ", " >", " >>"))
    return False


def can_end(text: str, lines: Sequence[str | None] | None = None) -> bool:
    """Whether the reply may end here: `text` is a command (and, given the code's `lines`, one
    that applies to it)."""
    cmd = parse(text)
    if not isinstance(cmd, Command):
        return False
    if lines is None or cmd.op == "EXIT":
        return True
    if cmd.line not in _targets(cmd.op, lines):
        return False
    line = lines[cmd.line - 1] if cmd.op == "REPW" else None
    return line is None or cmd.old in line


def _targets(op: str, lines: Sequence[str | None] | None) -> range | set[int] | None:
    """The line numbers `op` can apply to (None: any, the code being unknown). REPW needs a
    non-empty line: on an empty one no old text could follow, and decoding would be stuck."""
    if lines is None or op == "EXIT":
        return None
    if op == "ADDL":
        return range(1, len(lines) + 2)
    if op == "REPW":
        return {i for i, line in enumerate(lines, 1) if line is None or line}
    return range(1, len(lines) + 1)


def split_code(code: str) -> tuple[tuple[str, ...], bool]:
    """Code as editor lines, and whether it ended with a newline. Any of \\r\\n, \\r, \\n ends a
    line (as for Python's tokenizer); a final newline ends the last line rather than starting one."""
    code = code.replace("\r\n", "\n").replace("\r", "\n")
    if code.endswith("\n"):
        return tuple(code[:-1].split("\n")), True
    return (tuple(code.split("\n")) if code else ()), False


def edit_script(src: str | list[str], dst: str | list[str]) -> list[Command]:
    """Commands that turn `src` into `dst` (line lists, or code split as the editor splits it),
    ending in EXIT.

    Computed from difflib opcodes, applied bottom-up so each command's line numbers refer to the
    state it is applied to without shifting what comes before it. Replacements of equal-length
    blocks become REPL (or REPW when a single word-ish span changed); the rest DELL/ADDL.
    """
    a = list(split_code(src)[0]) if isinstance(src, str) else list(src)
    b = list(split_code(dst)[0]) if isinstance(dst, str) else list(dst)
    out: list[Command] = []
    ops = difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in reversed(ops):
        if tag == "equal":
            continue
        common = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        # lines past the common part: delete extras bottom-up, or add new ones top-down
        for i in range(i2 - 1, i1 + common - 1, -1):
            out.append(Command("DELL", i + 1))
        for k, j in enumerate(range(j1 + common, j2)):
            out.append(Command("ADDL", i1 + common + k + 1, b[j]))
        for k in range(common - 1, -1, -1):
            out.append(line_edit(i1 + k + 1, a[i1 + k], b[j1 + k]))
    out.append(Command("EXIT"))
    return out


def line_edit(n: int, old: str, new: str) -> Command:
    """The command that turns line n from `old` into `new`: REPW when one span changed and it
    identifies the change uniquely, else REPL."""
    sm = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    spans = [op for op in sm.get_opcodes() if op[0] != "equal"]
    if len(spans) == 1:
        _, i1, i2, j1, j2 = spans[0]
        # widen to whole tokens (`!=` not `!`, `count` not `unt`) so edits read like a person's
        kind = _char_kind(old[i1] if i1 < i2 else new[j1])
        while i1 > 0 and j1 > 0 and old[i1 - 1] == new[j1 - 1] and _char_kind(old[i1 - 1]) == kind != "":
            i1, j1 = i1 - 1, j1 - 1
        while i2 < len(old) and j2 < len(new) and old[i2] == new[j2] and _char_kind(old[i2]) == kind != "":
            i2, j2 = i2 + 1, j2 + 1
        piece, repl = old[i1:i2], new[j1:j2]
        if (piece and old.count(piece) == 1 and ">>>" not in piece and piece.strip()
                and old.replace(piece, repl) == new):
            return Command("REPW", n, repl, piece)
    return Command("REPL", n, new)


def _char_kind(c: str) -> str:
    if c.isalnum() or c == "_":
        return "word"
    return "op" if c in "=!<>+-*/%&|^~" else ""
