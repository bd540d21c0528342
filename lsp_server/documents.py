"""The open documents, kept exactly as the client has them, and LSP positions in utf-8 / utf-16 / utf-32.

pygls' `Workspace` is not used for text, for three reasons found in pygls 2.1's `TextDocument`:
- its lines come from `str.splitlines`, which also breaks at form feed, \\v, \\x1c-\\x1e, \\x85, U+2028 and
  U+2029; LSP breaks lines only at "\\n", "\\r\\n" and "\\r". The standard library has form feeds (^L between
  sections), so every position after one was on the wrong line and edits landed in the wrong place;
- a character past the end of a line is clamped to one short of the line's end (the spec says: the end);
- every position lookup and every edit re-splits the whole document: O(document) per keystroke.
Here a document keeps its text and the start offset of every line; an edit rescans only the text it inserts.

Offsets are Python string indices (code points). A position inside a character (half of a utf-16 surrogate
pair, the middle of a utf-8 sequence) rounds down to that character's start.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ENCODINGS",
    "Change",
    "Document",
    "DocumentStore",
    "column_to_units",
    "line_starts",
    "units_to_column",
]

ENCODINGS = ("utf-8", "utf-16", "utf-32")
_BREAK = re.compile(r"\r\n|\r|\n")
_HIGH_SURROGATE = range(0xD800, 0xDC00)


def line_starts(text: str) -> list[int]:
    """Offsets where LSP lines start: 0, and after each "\\n", "\\r\\n" or lone "\\r"."""
    return [0, *(match.end() for match in _BREAK.finditer(text))]


def units_to_column(line: str, units: int, encoding: str) -> int:
    """The code point index in `line` (without its line break) of `units` code units; clamped to the line."""
    if units <= 0:
        return 0
    if encoding == "utf-32" or line.isascii():
        return min(units, len(line))
    if encoding == "utf-16":
        data = line.encode("utf-16-le", "surrogatepass")
        if 2 * units >= len(data):
            return len(line)
        prefix = data[: 2 * units].decode("utf-16-le", "surrogatepass")
        column = len(prefix)
        # A cut between the halves of a pair decodes to a lone high surrogate: round down to the pair's start.
        if ord(prefix[-1]) in _HIGH_SURROGATE and line[column - 1] != prefix[-1]:
            column -= 1
        return column
    data = line.encode("utf-8", "surrogatepass")
    if units >= len(data):
        return len(line)
    head = data[:units]
    try:
        return len(head.decode("utf-8", "surrogatepass"))
    except UnicodeDecodeError as error:  # cut inside a multi-byte sequence: round down
        return len(head[: error.start].decode("utf-8", "surrogatepass"))


def column_to_units(line: str, column: int, encoding: str) -> int:
    """Code units taken by `line[:column]`."""
    prefix = line[: max(column, 0)]
    if encoding == "utf-32" or prefix.isascii():
        return len(prefix)
    if encoding == "utf-16":
        return len(prefix.encode("utf-16-le", "surrogatepass")) // 2
    return len(prefix.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True)
class Change:
    """One content change: `range` is (start line, start character, end line, end character) in the
    session's code units, None for a whole-document replacement."""

    text: str
    range: tuple[int, int, int, int] | None = None


class Document:
    def __init__(self, uri: str, text: str, language_id: str = "", version: int | None = None) -> None:
        self.uri = uri
        self.language_id = language_id
        self.version = version
        self._text = text
        self._starts = line_starts(text)
        self.last_edit_deleted = False  # the latest change only removed text (backspace, delete, cut)

    @property
    def text(self) -> str:
        return self._text

    @property
    def line_count(self) -> int:
        return len(self._starts)

    def line(self, index: int) -> str:
        """Line `index` without its line break ("" past the end)."""
        if not 0 <= index < len(self._starts):
            return ""
        start = self._starts[index]
        if index + 1 == len(self._starts):
            return self._text[start:]  # the last line has no break
        end = self._starts[index + 1] - 1  # the break's last character: "\n" or a lone "\r"
        if self._text[end] == "\n" and end > start and self._text[end - 1] == "\r":
            end -= 1
        return self._text[start:end]

    def offset_at(self, line: int, character: int, encoding: str = "utf-16") -> int:
        """The offset of an LSP position: a character past the line's end means its end (as the spec says), a
        line past the last one means the end of the document, negative values mean 0."""
        if line < 0:
            return 0
        if line >= len(self._starts):
            return len(self._text)
        return self._starts[line] + units_to_column(self.line(line), character, encoding)

    def position_at(self, offset: int, encoding: str = "utf-16") -> tuple[int, int]:
        """The LSP position (line, character in code units) of an offset, clamped to the document."""
        offset = min(max(offset, 0), len(self._text))
        line = bisect.bisect_right(self._starts, offset) - 1
        column = min(offset - self._starts[line], len(self.line(line)))
        return line, column_to_units(self.line(line), column, encoding)

    def apply(self, change: Change, encoding: str = "utf-16") -> None:
        if change.range is None:
            self._text = change.text
            self._starts = line_starts(change.text)
            self.last_edit_deleted = False
            return
        start_line, start_char, end_line, end_char = change.range
        start = self.offset_at(start_line, start_char, encoding)
        end = self.offset_at(end_line, end_char, encoding)
        if end < start:  # a reversed range: take it as the span it names
            start, end = end, start
        self.replace(start, end, change.text)
        self.last_edit_deleted = not change.text and end > start

    def replace(self, start: int, end: int, new: str) -> None:
        """text[start:end] = new, keeping the line index right.

        Whether p is a line start depends only on text[p - 1] and text[p] ("\\n" before it, or "\\r" before
        something other than "\\n"). So starts below `start` stay, starts after the inserted text move by the
        length difference, and only starts in [start, start + len(new)] are looked for, in the new text.
        """
        text = self._text[:start] + new + self._text[end:]
        starts = self._starts
        head = starts[: bisect.bisect_right(starts, start - 1)] or [0]
        delta = len(new) - (end - start)
        tail = [s + delta for s in starts[bisect.bisect_left(starts, end + 1) :]]
        stop = start + len(new)
        window = _BREAK.finditer(text, max(start - 1, 0), min(stop + 1, len(text)))
        middle = [m.end() for m in window if max(start, 1) <= m.end() <= stop]
        self._text = text
        self._starts = head + middle + tail


class DocumentStore:
    """Open documents by URI. Edits for a document that is not open are ignored (and reported as False)."""

    def __init__(self) -> None:
        self._documents: dict[str, Document] = {}

    def __len__(self) -> int:
        return len(self._documents)

    def get(self, uri: str) -> Document | None:
        return self._documents.get(uri)

    def open(self, uri: str, text: str, language_id: str = "", version: int | None = None) -> Document:
        document = Document(uri, text, language_id, version)
        self._documents[uri] = document
        return document

    def change(self, uri: str, changes: Iterable[Change], version: int | None, encoding: str) -> bool:
        document = self._documents.get(uri)
        if document is None:
            return False
        for change in changes:
            document.apply(change, encoding)
        document.version = version
        return True

    def close(self, uri: str) -> bool:
        return self._documents.pop(uri, None) is not None
