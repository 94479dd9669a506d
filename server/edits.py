"""Minimal text edits from one version of a document to the next, computed with difflib.

Whole lines change, so positions are line starts except at the very end of a document with no
final newline; there the character offset is counted in the client's negotiated position
encoding (UTF-16 code units by default, or UTF-8 bytes, or UTF-32 code points).
"""
from __future__ import annotations

import difflib

from lsprotocol import types


def units(text: str, encoding: str) -> int:
    if encoding == types.PositionEncodingKind.Utf8:
        return len(text.encode("utf-8"))
    if encoding == types.PositionEncodingKind.Utf32:
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def line_edits(old: str, new: str, encoding: str = types.PositionEncodingKind.Utf16) -> list[types.TextEdit]:
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)

    def position(i: int) -> types.Position:
        if i < len(a) or not a or a[-1].endswith(("\n", "\r")):
            return types.Position(line=i, character=0)
        return types.Position(line=len(a) - 1, character=units(a[-1], encoding))  # end of a last unterminated line

    edits = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        start = types.Position(line=i1, character=0) if i1 < len(a) else position(i1)
        edits.append(types.TextEdit(range=types.Range(start=start, end=position(i2)), new_text="".join(b[j1:j2])))
    return edits


def apply_edits(text: str, edits: list[types.TextEdit], encoding: str = types.PositionEncodingKind.Utf16) -> str:
    """Apply non-overlapping edits (as a client would); used to check `line_edits`."""
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def index(p: types.Position) -> int:
        if p.line >= len(lines):
            return len(text)
        line, col, count = lines[p.line], 0, 0
        while col < len(line) and count < p.character:
            count += units(line[col], encoding)
            col += 1
        return offsets[p.line] + col

    for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[: index(e.range.start)] + e.new_text + text[index(e.range.end):]
    return text
