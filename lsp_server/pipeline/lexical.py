"""Python's lexical layer, as much of it as completion needs: are we in code, a comment or a string?

Two scanners over the same rules: `scan` jumps through a prompt window with regular expressions (it runs on
every keystroke over a few thousand characters), `first_unmatched_closer` walks a short completion character
by character and also tracks brackets. Neither knows where a string opened before the text it is given: a
triple-quoted string that began before the prompt window is seen as code (the window is cut at a line start,
and docstrings longer than the window are rare). f-string replacement fields are treated as string text.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

__all__ = ["CODE", "Lex", "LexState", "first_unmatched_closer", "scan"]

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = frozenset(OPENERS.values())


class Lex(enum.Enum):
    CODE = "code"
    COMMENT = "comment"  # after a '#' on this line
    STRING = "string"  # inside '...' or "..."
    TRIPLE_STRING = "triple_string"  # inside '''...''' or """...""" (docstrings included)


@dataclass(frozen=True)
class LexState:
    kind: Lex = Lex.CODE
    quote: str | None = None  # the open string's quote: ', ", ''' or """
    opened_at: int | None = None  # index in the scanned text of the open string's quote or comment's '#'


CODE = LexState()

_CODE_EVENT = re.compile(r"""#|'''|\"\"\"|'|\"""")
# A string's body up to (not including) its closing quote, a newline ending a one-line string, the end of the
# text, or a backslash that is the last character (its escaped character has not arrived yet).
_BODY = {
    "'": re.compile(r"(?:[^\\\n']|\\[\s\S])*"),
    '"': re.compile(r'(?:[^\\\n"]|\\[\s\S])*'),
    "'''": re.compile(r"(?:[^\\']|\\[\s\S]|'(?!''))*"),
    '"""': re.compile(r'(?:[^\\"]|\\[\s\S]|"(?!""))*'),
}


def scan(text: str, state: LexState = CODE) -> LexState:
    """The lexical state at the end of `text`, given the state at its start."""
    kind, quote, opened = state.kind, state.quote, state.opened_at
    pos, end = 0, len(text)
    while pos < end:
        if kind is Lex.CODE:
            match = _CODE_EVENT.search(text, pos)
            if match is None:
                return CODE
            token = match.group()
            if token == "#":
                kind, opened, pos = Lex.COMMENT, match.start(), match.end()
            else:
                kind = Lex.TRIPLE_STRING if len(token) == 3 else Lex.STRING
                quote, opened, pos = token, match.start(), match.end()
        elif kind is Lex.COMMENT:
            newline = text.find("\n", pos)
            if newline < 0:
                break
            kind, opened, pos = Lex.CODE, None, newline + 1
        else:
            assert quote is not None
            pos = _BODY[quote].match(text, pos).end()  # type: ignore[union-attr]
            if pos >= end:
                break
            if text.startswith(quote, pos):
                kind, quote, opened, pos = Lex.CODE, None, None, pos + len(quote)
            elif text[pos] == "\n":  # an unterminated one-line string: Python stops it at the line end
                kind, quote, opened, pos = Lex.CODE, None, None, pos + 1
            else:  # a trailing backslash
                break
    return LexState(kind, quote, opened)


def first_unmatched_closer(text: str, state: LexState = CODE) -> int | None:
    """Index of the first character of `text` that closes something opened before `text`, else None.

    That is a closing bracket with no opener in `text` (or a mismatched one), or the closing quote of the
    string that `state` says is open at the start. Brackets in strings and comments do not count.
    """
    stack: list[str] = []
    kind, quote = state.kind, state.quote
    opened_here = False  # the current string was opened inside `text`
    pos, end = 0, len(text)
    while pos < end:
        char = text[pos]
        if kind is Lex.CODE:
            if char == "#":
                kind = Lex.COMMENT
            elif char in "'\"":
                quote = char * 3 if text.startswith(char * 3, pos) else char
                kind = Lex.TRIPLE_STRING if len(quote) == 3 else Lex.STRING
                opened_here = True
                pos += len(quote)
                continue
            elif char in OPENERS:
                stack.append(OPENERS[char])
            elif char in CLOSERS:
                if not stack or stack[-1] != char:
                    return pos
                stack.pop()
        elif kind is Lex.COMMENT:
            if char == "\n":
                kind = Lex.CODE
        else:
            assert quote is not None
            if char == "\\":
                pos += 2
                continue
            if text.startswith(quote, pos):
                if not opened_here:
                    return pos
                pos += len(quote)
                kind, quote = Lex.CODE, None
                continue
            if char == "\n" and len(quote) == 1:
                kind, quote = Lex.CODE, None
        pos += 1
    return None
