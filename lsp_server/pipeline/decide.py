"""Step 1: complete at all, and how much?

`line_text` is the cursor's whole line without its line break and `character` a Python index into it (code
points: the document store converts LSP's UTF-16 positions before this is called).
"""

from __future__ import annotations

import enum

__all__ = ["Mode", "choose_mode", "decide", "is_identifier_char", "should_complete"]


class Mode(enum.Enum):
    SINGLE_LINE = "single_line"  # code right of the cursor: finish this line only
    MULTI_LINE = "multi_line"  # only whitespace right of the cursor: lines may follow


def is_identifier_char(char: str, extra: str = "") -> bool:
    """A character that can continue an identifier: Python's (letters, digits, '_', combining marks...), or
    one of `extra` (JavaScript's and Java's '$')."""
    return len(char) == 1 and (("a" + char).isidentifier() or char in extra)


def should_complete(line_text: str, character: int, invoked: bool, identifier_extra: str = "") -> bool:
    """Automatic completion waits while the cursor is inside or before a word; asking for it always works.

    Ghost text in front of `|name` would have to end exactly where the word starts, and users read it as
    noise (peers' complaint). An explicit invoke is a request, so it is honoured.
    """
    if invoked:
        return True
    character = min(max(character, 0), len(line_text))
    return not is_identifier_char(line_text[character : character + 1], identifier_extra)


def choose_mode(line_text: str, character: int) -> Mode:
    """Multi-line at the end of a line; single-line when code follows the cursor on its line.

    Multi-line inserts in the middle of a line push the rest of it down, which users hate.
    """
    character = min(max(character, 0), len(line_text))
    return Mode.MULTI_LINE if not line_text[character:].strip() else Mode.SINGLE_LINE


def decide(line_text: str, character: int, invoked: bool, identifier_extra: str = "") -> Mode | None:
    """The mode to complete in, or None for no completion."""
    if not should_complete(line_text, character, invoked, identifier_extra):
        return None
    return choose_mode(line_text, character)
