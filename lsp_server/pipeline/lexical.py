"""The lexical questions the pipeline asks, in any of the six languages (the scanner is `inference.rules.syntax`,
shared with the stop rule): what state is the cursor in (`scan`), and where does a text first close
something opened before it (`first_unmatched_closer`)?"""

from __future__ import annotations

from codegen_lsp.inference.rules.syntax import CLOSERS, CODE, OPENERS, Lex, LexState, Syntax, brackets, scan

__all__ = ["CODE", "Lex", "LexState", "first_unmatched_closer", "scan"]


def first_unmatched_closer(text: str, syntax: Syntax, state: LexState = CODE) -> int | None:
    """Index of the first character of `text` that closes something opened before `text`, else None.

    That is a closing bracket with no opener in `text` (or a mismatched one), or the closer of the string or
    block comment that `state` says is open at the start. Brackets in strings and comments do not count.
    """
    stack: list[str] = []
    for pos, token in brackets(text, syntax, state):
        if token in OPENERS:
            stack.append(OPENERS[token])
        elif token in CLOSERS and stack and stack[-1] == token:
            stack.pop()
        else:  # a mismatched or unmatched bracket, or the closer of a string or comment
            return pos
    return None
