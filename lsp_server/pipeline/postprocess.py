"""Step 4: from what the model wrote to what the editor shows. Every step only shortens the text.

1. `rule.apply`: the stop rule the worker already decoded under (structural cut incl. the block's
   indentation, then CodeGen's truncation patterns), applied to the finished text.
2. `remove_suffix_duplicate`: the completion must not close what the text right of the cursor closes,
   nor end with a copy of it: suffix ")" and "a, b)" give "a, b".
3. `remove_repeated_following_lines`: trailing completion lines that repeat the document's next lines.
4. Trailing whitespace goes (see `trim_trailing_whitespace`); a completion that is only whitespace,
   including a lone newline + indent, is dropped: it would show no ghost text and the editor's own Enter
   already does that.
"""

from __future__ import annotations

from codegen_lsp.inference.protocol import Candidate, CompletionResult, StopReason
from codegen_lsp.inference.rules.generation import first_of_each
from codegen_lsp.inference.rules.stop_rule import StopRule
from codegen_lsp.lsp_server.pipeline.context import CompletionContext
from codegen_lsp.lsp_server.pipeline.decide import is_identifier_char
from codegen_lsp.lsp_server.pipeline.lexical import first_unmatched_closer

__all__ = [
    "complete_lines",
    "finish_items",
    "postprocess",
    "remove_repeated_following_lines",
    "remove_suffix_duplicate",
    "trim_trailing_whitespace",
]


def postprocess(raw: str, ctx: CompletionContext, rule: StopRule) -> str:
    """The text to insert at the cursor, or "" for nothing."""
    text = rule.apply(raw)
    text = trim_trailing_whitespace(text, ctx)
    text = remove_suffix_duplicate(text, ctx)
    text = remove_repeated_following_lines(text, ctx)
    text = trim_trailing_whitespace(text, ctx)
    return text if text.strip() else ""


def trim_trailing_whitespace(text: str, ctx: CompletionContext) -> str:
    """At the end of a line all trailing whitespace goes; before code on the line, a space that separates
    the completion from a following word is kept ("not " before "value")."""
    suffix = ctx.line_suffix
    if not suffix.strip():
        return text.rstrip()
    keep_space = is_identifier_char(suffix[0], ctx.language.identifier_extra) or suffix[0] in "\"'`([{"
    trimmed = text.rstrip()
    if keep_space and trimmed and "\n" not in text[len(trimmed) :]:
        return text[: len(trimmed) + 1]  # one separating space (or tab), as the model wrote it
    return trimmed


def remove_suffix_duplicate(text: str, ctx: CompletionContext) -> str:
    """Drop what the text right of the cursor (on its line) already provides.

    A copy of the suffix at the completion's end goes ("b, c)" before ", c)"), unless the suffix closes
    something opened before the cursor and the copy does not (the ")" of "f(x)" before ")" is the
    completion's own). Then, if the suffix closes something opened before the cursor (a bracket, the
    string the cursor is in), the completion is cut before its first character that does the same:
    whatever followed it on the line contradicts the suffix. Otherwise copies are removed while they repeat.
    """
    suffix = ctx.line_suffix.strip()
    if not suffix or not text.strip():
        return text
    if first_unmatched_closer(suffix, ctx.language.syntax, ctx.lex) is None:
        while text.rstrip().endswith(suffix) and text.strip():
            text = text.rstrip()[: -len(suffix)]
        return text
    body = text.rstrip()
    if body.endswith(suffix):
        copy = len(body) - len(suffix)
        closer = first_unmatched_closer(body, ctx.language.syntax, ctx.lex)
        if closer is not None and closer >= copy:
            text = body[:copy]
    closer = first_unmatched_closer(text, ctx.language.syntax, ctx.lex)
    return text if closer is None else text[:closer]


def remove_repeated_following_lines(text: str, ctx: CompletionContext) -> str:
    """Cut the completion before a run of its lines that repeats the document's next lines.

    Lines compare without surrounding whitespace; blank lines are skipped on both sides. The first
    completion line counts only when it is a whole line (the cursor's line is blank). A last line that is
    a prefix of the document's line also counts (the token limit cut it), once a whole line matched.
    """
    following = [line.strip() for line in ctx.following_lines if line.strip()]
    if not following:
        return text
    lines = text.split("\n")
    first = 0 if not (ctx.line_prefix + ctx.line_suffix).strip() else 1
    for start in range(first, len(lines)):
        tail = [line.strip() for line in lines[start:] if line.strip()]
        if tail and len(tail) <= len(following) and _repeats(tail, following):
            return "\n".join(lines[:start])
    return text


def _repeats(tail: list[str], following: list[str]) -> bool:
    *whole, last = tail
    if any(line != following[i] for i, line in enumerate(whole)):
        return False
    expected = following[len(whole)]
    return last == expected or (bool(whole) and expected.startswith(last))


def complete_lines(candidate: Candidate) -> str:
    """A candidate the token limit cut mid-line keeps its complete lines only (when it has any): a dangling
    `if self` after good lines is worse than no last line."""
    text = candidate.text
    if candidate.stop_reason not in (StopReason.MAX_TOKENS, StopReason.CONTEXT_FULL) or text.endswith("\n"):
        return text
    first_line = len(text) - len(text.lstrip("\n"))
    last_newline = text.rfind("\n")
    return text[:last_newline] if last_newline > first_line else text


def finish_items(result: CompletionResult, ctx: CompletionContext, rule: StopRule) -> list[str]:
    """Every candidate post-processed; empty and duplicate items dropped, the backend's order kept."""
    texts = (postprocess(complete_lines(candidate), ctx, rule) for candidate in result.candidates)
    return first_of_each(text for text in texts if text)
