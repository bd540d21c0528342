"""Where a completion ends: one rule shared by the worker (stop decoding early) and the server (cut the text).

The worker calls `StopRule.cut(text_so_far)` after every token and stops as soon as it is not None; the
server cuts the finished text with `StopRule.final_cut(text)`. Both give the same answer because `cut` is
FINAL: once it returns `p`, every extension of the text has the same cut `p` (and `final_cut` says `p` too),
so stopping early never changes what the person sees. It only has to be decided early; that is where the
work below goes.

What is cut, in order:

1. The structural cut, fixed by where the cursor is (chosen by `lsp_server.pipeline.context.stop_rule_for`):
   - `close_after`: inside a long string (a docstring, a text block, a template) or a block comment, the
     completion ends right after its closer, which is kept; backslash escapes are honoured where the form
     has them (`close_escapes`). The truncation patterns are NOT applied: the pattern for triple quotes at a
     line start would cut the closing quotes of a docstring, `^#` or three newlines its body.
   - `single_line`: before the first "\\n".
   - `min_indent` (Python): at the start of the first later line (not the first) whose indentation, once a
     non-blank character shows it, is below `min_indent` columns (tabs to multiples of 8, as Python does).
   - `braces` (C, C++, Go, Java, JavaScript: the name of the syntax in `inference.rules.syntax`): brackets are
     counted in code only (not in strings or comments). The cursor's level is 0, or lower where the first
     line closes brackets opened before the cursor (`f(a, ` completed with `b);`). A closer on a later line
     that goes below that level leaves the cursor's block: the cut is at the start of its line when only
     blanks precede it there, else right before it. A later line that starts with `}` in column 0 and ends
     back at the cursor's level ends a top-level block (a function, a struct): the cut is at the end of
     that line. This is the analogue of Python's dedent and of its "second `def`".
2. transformers' `CodeGenTokenizer.truncate` applied to what is left, as it sits in the document
   (`tokenizer.truncation.truncate_cut`, the one implementation): the search runs over
   `line_prefix + text` from `len(line_prefix)`, so `^` matches only at real line starts (a completion that
   continues the current line is not cut at its first character) and the "second top-level `print` / `def`"
   cuts (`markers`; other languages have their own) count the one the person is typing. With
   `line_prefix == ""` and the default markers this is exactly `truncate_before_pattern`. An empty pattern
   list disables step 2, as in transformers' `decode`.

Finality. A regex match can appear, or vanish, as text is appended (`x$` matches "x" but not "xy"), so only
LITERAL patterns (an optional `^` and fixed text, as `re.escape` writes it; all the defaults are) are
decided early: a match is declared once it is complete and no earlier start could still become one.
Markers are literal too. Any other pattern makes the worker wait for the structural cut, EOS or the token
limit, and the server's `final_cut` applies it then, exactly (and within a time bound, see
`tokenizer.truncation`).

Per-token work grows with the completion, never with the document or the line: a line prefix is kept to its
first LINE_HEAD and last LINE_TAIL characters (the markers look at where the line starts, lookbehinds at
what precedes the cursor), so a 5 MB line costs what a short one does. Runtime code here must not import
torch.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from codegen_lsp.inference.rules.syntax import CLOSERS, CODE, LexState, syntax_named, walk
from codegen_lsp.tokenizer.truncation import (
    DEFAULT_TRUNCATE_BEFORE_PATTERN,
    TRANSFORMERS_MARKERS,
    Literal,
    compile_patterns,
    literal_pattern,
    second_marker,
    truncate_cut,
)

__all__ = ["LINE_HEAD", "LINE_TAIL", "StopRule", "indent_width"]

TAB_SIZE = 8  # Python's tokenizer moves a tab to the next multiple of 8 columns
LINE_HEAD = 32  # characters of a long line prefix kept from its start (markers are shorter)
LINE_TAIL = 224  # ... and from its end (what a pattern may look back at)
_BLANK = " \t\f\r"
_BRACKETS = frozenset("()[]{}")


def indent_width(whitespace: str) -> int:
    """Columns taken by leading whitespace (stops at the first non-blank character)."""
    column = 0
    for char in whitespace:
        if char == " ":
            column += 1
        elif char == "\t":
            column = (column // TAB_SIZE + 1) * TAB_SIZE
        elif char == "\f":
            column = 0
        else:
            break
    return column


@dataclass(frozen=True)
class StopRule:
    """Where a completion ends; picklable plain values, sent with each request to the worker."""

    patterns: tuple[str, ...] = DEFAULT_TRUNCATE_BEFORE_PATTERN  # '^' anchors at real document line starts
    line_prefix: str = ""  # document text on the cursor's line, before the cursor (long ones are clipped)
    single_line: bool = False  # cut before the first "\n"
    close_after: str | None = None  # inside a long string or block comment: end right after this closer (kept)
    close_escapes: bool = True  # a backslash escapes the next character before `close_after`
    min_indent: int | None = None  # Python: cut at the first later line indented below this many columns
    braces: str | None = None  # brace languages: the syntax name; cut where the cursor's block ends
    markers: tuple[str, ...] = TRANSFORMERS_MARKERS  # cut before a second line starting with each, in turn

    def __post_init__(self) -> None:
        for name in ("patterns", "markers"):
            if not isinstance(getattr(self, name), tuple):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        compile_patterns(self.patterns)  # ValueError naming a bad pattern, now rather than in the worker
        if "\n" in self.line_prefix:
            raise ValueError("StopRule.line_prefix is one line: it must not contain '\\n'")
        if len(self.line_prefix) > LINE_HEAD + LINE_TAIL:
            clipped = self.line_prefix[:LINE_HEAD] + self.line_prefix[-LINE_TAIL:]
            object.__setattr__(self, "line_prefix", clipped)
        if self.close_after is not None and not self.close_after:
            raise ValueError("StopRule.close_after must be a non-empty closer, or None")
        if self.braces is not None:
            syntax_named(self.braces)  # ValueError for an unknown language
        if any(not marker for marker in self.markers):
            raise ValueError("StopRule.markers must be non-empty strings")

    def __getstate__(self) -> dict[str, object]:
        return {name: value for name, value in self.__dict__.items() if not name.startswith("_")}

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def cut(self, text: str) -> int | None:
        """Where `text` is cut (keep `text[:p]`) whatever is appended to it later; None: not decided yet."""
        if self.close_after is not None:
            return self._close_cut(text)
        end, known = self._structural_cut(text)
        prefix = self.line_prefix
        start = len(prefix)
        if end is not None:
            return self._truncate(prefix + text, start + end) - start
        if not self.patterns:
            return None
        decided = self._truncate_decided(prefix + text, start + known)
        return None if decided is None else decided - start

    def final_cut(self, text: str) -> int:
        """Where a finished `text` (EOS, token limit, early stop) is cut; `cut(text)` whenever that is set."""
        if self.close_after is not None:
            end = self._close_cut(text)
            return len(text) if end is None else end
        end, _ = self._structural_cut(text)
        if end is None:
            end = len(text)
        start = len(self.line_prefix)
        return self._truncate(self.line_prefix + text, start + end) - start

    def apply(self, text: str) -> str:
        """The finished `text` as post-processing keeps it."""
        return text[: self.final_cut(text)]

    # -- structural cuts ---------------------------------------------------------------------------------

    def _close_cut(self, text: str) -> int | None:
        """Index just past the closer (or of the first newline when single-line); None if not yet."""
        closer = self.close_after
        assert closer is not None
        pos = 0
        if self.close_escapes:
            trailing = len(self.line_prefix) - len(self.line_prefix.rstrip("\\"))
            pos = 1 if trailing % 2 else 0  # an odd run of backslashes before the cursor escapes text[0]
        finder = _close_finder(closer, self.single_line, self.close_escapes)
        while True:
            match = finder.search(text, pos)
            if match is None:
                return None  # also when text ends in a lone backslash: the next character is escaped
            token = match.group()
            if token == "\n":
                return match.start()
            if token == closer:
                return match.end()
            pos = match.end()  # an escape pair

    def _structural_cut(self, text: str) -> tuple[int | None, int]:
        """(decided cut or None, how much of `text` is known to survive the cut whatever comes next)."""
        newline = text.find("\n")
        if self.single_line:
            return (newline, newline) if newline >= 0 else (None, len(text))
        if self.braces is not None:
            return self._brace_cut(text)
        if self.min_indent is None or self.min_indent <= 0 or newline < 0:
            return None, len(text)
        line_start = newline + 1
        while line_start < len(text):
            line_end = text.find("\n", line_start)
            stop = len(text) if line_end < 0 else line_end
            content = text[line_start:stop]
            stripped = content.lstrip(_BLANK)
            if stripped:
                if indent_width(content[: len(content) - len(stripped)]) < self.min_indent:
                    return line_start, line_start
            elif line_end < 0:
                return None, line_start  # indentation of this line not shown yet
            if line_end < 0:
                break
            line_start = line_end + 1
        return None, len(text)

    def _brace_cut(self, text: str) -> tuple[int | None, int]:
        """The brace rule (see the module docstring). The worker calls this with a text that grows by a token
        at a time, so the walk over complete lines is remembered and only the new ones are walked."""
        assert self.braces is not None
        syntax = syntax_named(self.braces)
        first_line_end = text.find("\n")
        last_line = text.rfind("\n") + 1
        walked: _BraceWalk | None = self.__dict__.get("_walked")
        if walked is None or not text.startswith(walked.lines):
            walked = _BraceWalk("", CODE, 0, 0)
        lex, depth, floor = walked.lex, walked.depth, walked.floor  # floor: the cursor's level (see above)
        top_level_end: int | None = None  # the newline ending a line that starts with '}' in column 0
        for low, high in ((len(walked.lines), last_line), (max(last_line, len(walked.lines)), len(text))):
            if low >= high:
                continue
            events, lex = walk(text[low:high], syntax, lex)
            for relative, token in events:
                if token not in _BRACKETS:
                    continue  # the closer of a string or comment open where the remembered walk stopped
                pos = low + relative
                if top_level_end is not None and pos > top_level_end:
                    if depth == floor:
                        return top_level_end, top_level_end
                    top_level_end = None
                depth += -1 if token in CLOSERS else 1
                if first_line_end < 0 or pos < first_line_end:
                    floor = min(floor, depth)
                    continue
                if depth < floor:  # closes a block opened before the cursor
                    line_start = text.rfind("\n", 0, pos) + 1
                    cut = pos if text[line_start:pos].strip(_BLANK) else line_start
                    return cut, cut
                if token == "}" and text[pos - 1] == "\n":  # column 0: does its line end back at the floor?
                    newline = text.find("\n", pos)
                    top_level_end = newline if newline >= 0 else len(text) + 1  # past the end: not known yet
            if high == last_line:  # complete lines: remember them
                if top_level_end is not None:
                    if depth == floor:
                        return top_level_end, top_level_end
                    top_level_end = None
                object.__setattr__(self, "_walked", _BraceWalk(text[:last_line], lex, depth, floor))
        if top_level_end is not None and depth == floor:
            if top_level_end <= len(text):
                return top_level_end, top_level_end
            return None, len(text)
        if last_line > 0 and not text[last_line:].strip(_BLANK):
            return None, last_line  # a closer may still come first on this line: the cut would be its start
        return None, len(text)

    # -- transformers' truncate ------------------------------------------------------------------------

    def _truncate(self, s: str, end: int) -> int:
        """transformers' truncate of s[start:end] as it sits in s (start = len(line_prefix)), exactly."""
        if not self.patterns:
            return end
        return truncate_cut(s, len(self.line_prefix), end, self.patterns, self.markers)

    def _truncate_decided(self, s: str, known: int) -> int | None:
        """The truncate cut shared by every string that extends s[:known], or None if they may differ."""
        start = len(self.line_prefix)
        # Marker cuts, in turn: `lower` bounds the cut so far from below; `exact` says it is the cut.
        lower, exact = known, False
        for marker in self.markers:
            cut = second_marker(marker, s, lower)
            if exact or cut < lower:  # a complete second occurrence below every possible cut so far
                lower, exact = cut, True
            else:
                lower = min(lower, second_marker(marker, s, known), _pending_second(marker, s, known))
        if exact:
            return self._truncate(s, lower)
        literals = _literals(self.patterns)
        if literals is None:
            return None  # a pattern that is not literal: only the finished text decides
        best: int | None = None
        undecided = lower  # every pattern match not yet complete starts at or after this
        for literal in literals:
            found = literal.find(s, start, lower)
            if found is not None and (best is None or found < best):
                best = found
            low = max(start, lower - len(literal.text) + 1)
            undecided = min(undecided, _earliest_possible(literal, s, low, lower))
        if best is not None and best <= undecided:
            return best
        return None


@dataclass(frozen=True)
class _BraceWalk:
    """How far the brace rule has walked a completion: its complete lines, and the state after them."""

    lines: str
    lex: LexState
    depth: int
    floor: int


def _pending_second(marker: str, s: str, known: int) -> int:
    """Earliest start a still-incomplete line-start `marker` could have as a SECOND occurrence, else `known`."""
    if Literal(True, marker).find(s, 0, known) is None:
        return known  # a pending occurrence would be the first one
    for pos in range(max(0, known - len(marker) + 1), known):
        if (pos == 0 or s[pos - 1] == "\n") and marker.startswith(s[pos:known]):
            return pos
    return known


def _earliest_possible(literal: Literal, s: str, low: int, bound: int) -> int:
    """First start in [low, bound) where s[:bound] can still be extended into a match, else bound."""
    text = literal.text
    for pos in range(low, bound):
        if literal.at_line_start and pos > 0 and s[pos - 1] != "\n":
            continue
        if text.startswith(s[pos:bound]):
            return pos
    return bound


@functools.lru_cache(maxsize=64)
def _literals(patterns: tuple[str, ...]) -> tuple[Literal, ...] | None:
    literals = tuple(literal_pattern(pattern) for pattern in patterns)
    return None if any(literal is None for literal in literals) else literals  # type: ignore[return-value]


@functools.lru_cache(maxsize=16)
def _close_finder(closer: str, single_line: bool, escapes: bool) -> re.Pattern[str]:
    alternatives = ([r"\\[\s\S]"] if escapes else []) + [re.escape(closer)] + (["\n"] if single_line else [])
    return re.compile("|".join(alternatives))
