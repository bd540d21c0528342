"""Step 2: what the model sees (the prompt window) and what the cursor is in, plus the stop rule it implies.

Everything here is bounded by the window and the cursor's line, never by the document: on a 10 MB file a
keystroke costs the same as on a 10 kB one.

The window is STABLE. The worker keeps the key/value cache of the last prompt and only computes the tokens
after the common prefix, so a window start that moved on every keystroke would recompute the whole prompt
every time. Candidate starts are the first line start at or after each multiple of `chunk`
(`max_prompt_chars // 4`); the window starts at the earliest candidate that keeps the prompt within
`max_prompt_chars`. Typing at the end keeps the same start until the prompt would outgrow the cap, then the
start moves forward by about a chunk (see `window_start`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from codegen_lsp.inference.rules.stop_rule import StopRule, indent_width
from codegen_lsp.lsp_server.languages import LANGUAGES, Language
from codegen_lsp.lsp_server.pipeline.decide import Mode
from codegen_lsp.lsp_server.pipeline.lexical import CODE, Lex, LexState, scan

__all__ = ["CompletionContext", "block_indent", "build_context", "stop_rule_for", "window_start"]

FOLLOWING_LINES = 8  # lines after the cursor's line, for removing completions that repeat them
FOLLOWING_CHARS = 4096  # ...read from at most this many characters
_STRING_PREFIX_LETTERS = "rRbBuUfF"


@dataclass(frozen=True)
class CompletionContext:
    prompt: str  # text before the cursor, from a line start, at most max_prompt_chars long
    prompt_start: int  # where `prompt` starts in the document (Python str index)
    line_prefix: str  # the cursor's line before the cursor
    line_suffix: str  # the cursor's line after the cursor (without "\r\n")
    following_lines: tuple[str, ...]  # up to FOLLOWING_LINES lines after the cursor's line
    indent: str  # leading whitespace of the cursor's line (all of line_prefix when that is blank)
    lex: LexState = CODE  # at the cursor, scanned over the prompt window only
    is_docstring: bool = False  # Python: lex is a triple-quoted string that opened a statement (a docstring)
    language: Language = LANGUAGES["python"]

    @property
    def offset(self) -> int:
        return self.prompt_start + len(self.prompt)

    @property
    def indent_width(self) -> int:
        return indent_width(self.indent)


def window_start(text: str, offset: int, max_prompt_chars: int) -> int:
    """Where the prompt window for a cursor at `offset` starts (see the module docstring).

    The candidates are c_k = the first line start >= k * chunk; the window starts at the smallest c_k with
    c_k >= offset - max_prompt_chars. As c_k only depends on text before it, appending at the cursor keeps
    the start for as long as offset - start <= max_prompt_chars. Only text between offset - max_prompt_chars
    and the cursor is read. When no candidate fits (lines about as long as a chunk) the window starts at
    the first line start in it, and a line longer than the window gets a start at a chunk multiple in it;
    those starts are less stable.
    """
    lowest = offset - max(max_prompt_chars, 0)
    if lowest <= 0:
        return 0
    chunk = max(1, max_prompt_chars // 4)
    grid = lowest // chunk * chunk
    # The candidate for `grid` is below `lowest` iff a line starts in [grid, lowest); then the next one.
    line_starts_between = grid == 0 or "\n" in text[grid - 1 : lowest - 1]
    target = grid + chunk if line_starts_between else lowest
    if target == 0 or text[target - 1] == "\n":
        return target
    newline = text.find("\n", target, offset)
    if newline >= 0:
        return newline + 1
    # No candidate fits: prefer any line start in the window, else a chunk multiple in the long line.
    newline = text.find("\n", lowest - 1, offset)
    if newline >= 0:
        return newline + 1
    return lowest if lowest % chunk == 0 else grid + chunk


def build_context(
    text: str,
    offset: int,
    max_prompt_chars: int,
    *,
    language: Language = LANGUAGES["python"],
    max_following_lines: int = FOLLOWING_LINES,
) -> CompletionContext:
    """The completion context for a cursor at `offset` (a Python index into `text`) in a `language` document."""
    offset = min(max(offset, 0), len(text))
    start = window_start(text, offset, max_prompt_chars)
    prompt = text[start:offset]

    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    if line_end < 0:
        line_end = len(text)
    line_prefix = text[line_start:offset]
    line_suffix = text[offset:line_end].removesuffix("\r")
    stripped = line_prefix.lstrip(" \t\f")
    indent = line_prefix[: len(line_prefix) - len(stripped)]

    following: tuple[str, ...] = ()
    if line_end < len(text) and max_following_lines > 0:
        window = text[line_end + 1 : line_end + 1 + FOLLOWING_CHARS]
        lines = window.split("\n")
        if line_end + 1 + FOLLOWING_CHARS < len(text):
            lines = lines[:-1]  # the last one may be cut off
        following = tuple(line.removesuffix("\r") for line in lines[:max_following_lines])

    lex = scan(prompt, language.syntax)
    is_docstring = False
    if language.name == "python" and lex.kind is Lex.LONG_STRING and lex.opened_at is not None:
        opener = start + lex.opened_at
        before = text[max(text.rfind("\n", start, opener) + 1, start) : opener].strip()
        is_docstring = len(before) <= 2 and not before.strip(_STRING_PREFIX_LETTERS)  # only r/b/u/f
    return CompletionContext(
        prompt=prompt,
        prompt_start=start,
        line_prefix=line_prefix,
        line_suffix=line_suffix,
        following_lines=following,
        indent=indent,
        lex=lex,
        is_docstring=is_docstring,
        language=language,
    )


def block_indent(ctx: CompletionContext) -> int | None:
    """The indentation a multi-line completion must not leave: later lines below it are cut.

    A line that opens a block (ends with ':') keeps only that block's body: the limit is one column
    deeper than the line. So does a blank cursor line right below such a line (Enter after `def f():`
    before the editor indented). Otherwise the completion may go on within the cursor's block. At the top
    level there is no limit (the truncation patterns and the second-`def` rule end it).
    """
    width = ctx.indent_width
    if ctx.line_prefix.rstrip().endswith(":"):
        return width + 1
    if not ctx.line_prefix.strip():
        above = ctx.prompt[: len(ctx.prompt) - len(ctx.line_prefix)].rstrip()
        previous = above[above.rfind("\n") + 1 :]
        if previous.endswith(":") and not previous.lstrip().startswith("#"):
            width = max(width, indent_width(previous) + 1)
    return width or None


def stop_rule_for(ctx: CompletionContext, patterns: Sequence[str], mode: Mode) -> StopRule:
    """The stop rule for a completion at `ctx` in `mode`.

    - in a long string (a docstring, a text block, a template literal, a raw string) or a block comment:
      end right after its closer, patterns off;
    - in a line comment, or code right of the cursor: end at the end of the line;
    - multi-line code: end where the cursor's block ends: a later line that leaves it (Python,
      `block_indent`), a bracket that closes it (the brace languages).
    """
    patterns = tuple(patterns)
    single_line = mode is Mode.SINGLE_LINE
    language, lex, prefix = ctx.language, ctx.lex, ctx.line_prefix
    markers = language.markers
    if lex.kind in (Lex.LONG_STRING, Lex.BLOCK_COMMENT):
        return StopRule(
            patterns,
            prefix,
            single_line=single_line,
            close_after=lex.quote,
            close_escapes=lex.escapes,
            markers=markers,
        )
    if lex.kind is Lex.COMMENT or single_line:
        return StopRule(patterns, prefix, single_line=True, markers=markers)
    if language.braces:
        return StopRule(patterns, prefix, braces=language.name, markers=markers)
    return StopRule(patterns, prefix, min_indent=block_indent(ctx), markers=markers)
