"""Where a completion ends: one rule shared by the worker (stop decoding early) and the server (cut the text).

The worker calls `StopRule.cut(text_so_far)` after every token and stops as soon as it is not None; the
server cuts the finished text with `StopRule.final_cut(text)`. Both give the same answer because `cut` is
FINAL: once it returns `p`, every extension of the text has the same cut `p` (and `final_cut` says `p` too),
so stopping early never changes what the person sees. It only has to be decided early; that is where the
work below goes.

What is cut, in order:

1. The structural cut, fixed by where the cursor is (chosen by `lsp_server.pipeline.context.stop_rule_for`):
   - `close_after`: inside a string (a docstring), the completion ends right after the closing quotes,
     which are kept; backslash escapes are honoured. The truncation patterns are NOT applied: the pattern for
     triple quotes at a line start would cut the closing quotes of a docstring, `^#` or three newlines
     its body.
   - `single_line`: before the first "\\n".
   - `min_indent`: at the start of the first later line (not the first) whose indentation, once a
     non-blank character shows it, is below `min_indent` columns (tabs to multiples of 8, as Python does).
2. transformers' `CodeGenTokenizer.truncate` applied to what is left, as it sits in the document: the
   search runs over `line_prefix + text` from `len(line_prefix)`, so `^` matches only at real line starts
   (a completion that continues the current line is not cut at its first character) and the "second
   top-level `print` / `def`" cuts count the one the person is typing. With `line_prefix == ""` this is
   exactly `tokenizer.truncation.truncate_before_pattern`. An empty pattern list disables step 2, as in
   transformers' `decode`.

Finality for arbitrary patterns. A regex match can appear, or vanish, as text is appended: `abc` has no
match in "xab" but one at 1 in "xabc"; `x$` matches "x" but not "xy". So a match is only declared once
every position it, or any earlier match, could depend on is known. Each pattern gets a *reach*: an upper
bound on how many characters past a match start the regex engine can look (match width plus what `$`,
`\\b` and lookaheads peek at), computed from the parsed pattern. A match at `m` is declared once
`m + reach` characters are known; that also settles every earlier start. An earlier start that could still
match holds it back, except that starts whose known characters contradict the pattern's literal prefix
are ruled out. The defaults are literals (reaches 1, 13, 3, 3 and 3), so their matches are declared as
soon as they are complete. Patterns with unbounded reach (`\\s*`, `.+`, `\\Z`, backreferences, unbounded
lookaheads) are never declared early: the worker then stops at the structural cut, a second top-level
`def`/`print`, EOS or the token limit, and the server's `final_cut` still applies them exactly. Runtime
code here must not import torch.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

from codegen_lsp.tokenizer.truncation import DEFAULT_TRUNCATE_BEFORE_PATTERN, compile_patterns

try:  # Python >= 3.11
    from re import _constants as _sre
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as _sre  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

__all__ = ["StopRule", "indent_width", "pattern_reach"]

TAB_SIZE = 8  # Python's tokenizer moves a tab to the next multiple of 8 columns
_BLANK = " \t\f\r"

_PRINT = re.compile("^print", re.MULTILINE)
_DEF = re.compile("^def", re.MULTILINE)


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
    line_prefix: str = ""  # document text on the cursor's line, before the cursor
    single_line: bool = False  # cut before the first "\n"
    close_after: str | None = None  # inside a string: end right after these closing quotes (kept)
    min_indent: int | None = None  # cut at the first later line indented below this many columns

    def __post_init__(self) -> None:
        if not isinstance(self.patterns, tuple):
            object.__setattr__(self, "patterns", tuple(self.patterns))
        compile_patterns(self.patterns)  # ValueError naming a bad pattern, now rather than in the worker
        if "\n" in self.line_prefix:
            raise ValueError("StopRule.line_prefix is one line: it must not contain '\\n'")
        if self.close_after is not None and not self.close_after:
            raise ValueError("StopRule.close_after must be a non-empty quote, or None")

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
        """Index just past the closing quotes (or of the first newline when single-line); None if not yet."""
        quote = self.close_after
        assert quote is not None
        trailing = len(self.line_prefix) - len(self.line_prefix.rstrip("\\"))
        pos = 1 if trailing % 2 else 0  # an odd run of backslashes before the cursor escapes text[0]
        finder = _close_finder(quote, self.single_line)
        while True:
            match = finder.search(text, pos)
            if match is None:
                return None  # also when text ends in a lone backslash: the next character is escaped
            token = match.group()
            if token == "\n":
                return match.start()
            if token == quote:
                return match.end()
            pos = match.end()  # an escape pair

    def _structural_cut(self, text: str) -> tuple[int | None, int]:
        """(decided cut or None, how much of `text` is known to survive the cut whatever comes next)."""
        newline = text.find("\n")
        if self.single_line:
            return (newline, newline) if newline >= 0 else (None, len(text))
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

    # -- transformers' truncate ------------------------------------------------------------------------

    def _truncate(self, s: str, end: int) -> int:
        """transformers' truncate of s[start:end] as it sits in s (start = len(line_prefix)), exactly."""
        start = len(self.line_prefix)
        if not self.patterns:
            return end
        end = _second_match(_PRINT, s, end)
        end = _second_match(_DEF, s, end)
        best = end
        for pattern in compile_patterns(self.patterns):
            match = pattern.search(s, start, end)
            if match is not None and match.start() < best:
                best = match.start()
        return best

    def _truncate_decided(self, s: str, known: int) -> int | None:
        """The truncate cut shared by every string that extends s[:known], or None if they may differ."""
        start = len(self.line_prefix)
        print_cut = _second_match(_PRINT, s, known)
        if print_cut < known:  # s[:print_cut] can no longer change
            return self._truncate(s, print_cut)
        print_bound = _pending_second(_PRINT, "print", s, known)
        def_cut = _second_match(_DEF, s, known)
        if def_cut < known and def_cut + len("def") <= print_bound:  # no later print can cut this def off
            return self._truncate(s, def_cut)
        # The final cut before the patterns lies at or after `bound`; chars below it are fixed.
        bound = min(known, print_bound, def_cut, _pending_second(_DEF, "def", s, known))
        best: int | None = None
        undecided = bound  # every undecided pattern's first match starts at or after this
        for pattern, shape in zip(compile_patterns(self.patterns), _shapes(self.patterns), strict=True):
            if math.isinf(shape.reach):
                return None
            match = pattern.search(s, start, bound)
            if match is not None and match.start() + shape.reach <= bound:
                if best is None or match.start() < best:
                    best = match.start()
            else:
                low = max(start, bound - int(shape.reach) + 1)  # starts below `low` are settled
                undecided = min(undecided, shape.earliest_possible(s, low, bound))
        if best is not None and best <= undecided:
            return best
        return None


def _second_match(marker: re.Pattern[str], s: str, end: int) -> int:
    """Start of the second match of `marker` in s[:end] (as finditer counts), else `end`."""
    first = marker.search(s, 0, end)
    if first is None:
        return end
    second = marker.search(s, first.end(), end)
    return end if second is None else second.start()


def _pending_second(marker: re.Pattern[str], literal: str, s: str, known: int) -> int:
    """Earliest start a still-incomplete `^literal` could have as a SECOND occurrence, else `known`."""
    if marker.search(s, 0, known) is None:
        return known  # a pending occurrence would be the first one
    for pos in range(max(0, known - len(literal) + 1), known):
        if (pos == 0 or s[pos - 1] == "\n") and literal.startswith(s[pos:known]):
            return pos
    return known


@functools.lru_cache(maxsize=16)
def _close_finder(quote: str, single_line: bool) -> re.Pattern[str]:
    alternatives = [r"\\[\s\S]", re.escape(quote)] + (["\n"] if single_line else [])
    return re.compile("|".join(alternatives))


@dataclass(frozen=True)
class _Shape:
    """What a pattern's parse says about where it can match: how far it looks, what it starts with."""

    reach: float
    at_line_start: bool  # starts with '^': a match starts at 0 or after a "\n"
    literal_prefix: str  # every match starts with these characters

    def earliest_possible(self, s: str, low: int, bound: int) -> int:
        """First start in [low, bound) where s[:bound] can still be extended into a match, else bound."""
        prefix = self.literal_prefix
        for pos in range(low, bound):
            if self.at_line_start and pos > 0 and s[pos - 1] != "\n":
                continue
            known = min(len(prefix), bound - pos)
            if s.startswith(prefix[:known], pos):
                return pos
        return bound


@functools.lru_cache(maxsize=64)
def _shapes(patterns: tuple[str, ...]) -> tuple[_Shape, ...]:
    return tuple(_shape(pattern) for pattern in patterns)


def _shape(pattern: str) -> _Shape:
    reach = pattern_reach(pattern)
    try:
        parsed = _sre_parse.parse(pattern, re.MULTILINE)
        items = list(parsed)
    except Exception:  # noqa: BLE001 - see pattern_reach
        return _Shape(reach, False, "")
    at_line_start = False
    while items and items[0] == (_sre.AT, _sre.AT_BEGINNING):
        at_line_start = True
        items.pop(0)
    literal = []
    if not parsed.state.flags & re.IGNORECASE:
        for op, arg in items:
            if op is not _sre.LITERAL:
                break
            literal.append(chr(arg))
    return _Shape(reach, at_line_start, "".join(literal))


@functools.lru_cache(maxsize=256)
def pattern_reach(pattern: str) -> float:
    """How far past a match start (in characters) the regex engine can look; `math.inf` if unbounded.

    Whether `pattern` (compiled with re.MULTILINE) matches at position m is fixed by the text before
    m + reach; text appended after that cannot change it. Anything this analysis does not know is inf.
    """
    try:
        return _reach(_sre_parse.parse(pattern, re.MULTILINE))
    except Exception:  # noqa: BLE001 - private parser API: unknown shapes are just "unbounded"
        return math.inf


_ZERO_WIDTH_BACKWARD = {
    _sre.AT_BEGINNING,
    _sre.AT_BEGINNING_LINE,
    _sre.AT_BEGINNING_STRING,
}
_PEEK_ONE = {_sre.AT_BOUNDARY, _sre.AT_NON_BOUNDARY, _sre.AT_END_LINE}
_SINGLE_CHAR = {_sre.LITERAL, _sre.NOT_LITERAL, _sre.ANY, _sre.IN}
_REPEATS = {_sre.MAX_REPEAT, _sre.MIN_REPEAT} | (
    {_sre.POSSESSIVE_REPEAT} if hasattr(_sre, "POSSESSIVE_REPEAT") else set()
)


def _reach(items: object) -> float:
    """Sum over a sequence: an over-estimate (each item's own peek past its end is counted in full)."""
    return sum((_item_reach(op, arg) for op, arg in items), 0.0)  # type: ignore[attr-defined]


def _item_reach(op: object, arg: object) -> float:
    if op in _SINGLE_CHAR:
        return 1.0
    if op is _sre.AT:
        if arg in _ZERO_WIDTH_BACKWARD:
            return 0.0
        if arg in _PEEK_ONE:
            return 1.0
        if arg is _sre.AT_END:  # '$': end of string, or before a newline (that may be the last char)
            return 2.0
        return math.inf  # \Z and anything unknown
    if op is _sre.SUBPATTERN:
        return _reach(arg[-1])  # type: ignore[index]
    if op is _sre.BRANCH:
        return max((_reach(branch) for branch in arg[1]), default=0.0)  # type: ignore[index]
    if op in _REPEATS:
        _low, high, item = arg  # type: ignore[misc]
        inner = _reach(item)
        if inner == 0:
            return 0.0
        return math.inf if high == _sre.MAXREPEAT else high * inner
    if op in (_sre.ASSERT, _sre.ASSERT_NOT):
        direction, item = arg  # type: ignore[misc]
        inner = _reach(item)
        if direction < 0:  # lookbehind: starts its fixed width before here
            return max(0.0, inner - item.getwidth()[0])
        return inner
    if op is _sre.GROUPREF_EXISTS:
        _group, yes, no = arg  # type: ignore[misc]
        return max(_reach(yes), _reach(no) if no is not None else 0.0)
    if hasattr(_sre, "ATOMIC_GROUP") and op is _sre.ATOMIC_GROUP:
        return _reach(arg)
    return math.inf  # GROUPREF (backreference) and anything newer
