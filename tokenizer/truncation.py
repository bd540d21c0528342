"""CodeGen's `truncate_before_pattern`: cut a completion where the model starts writing something else.

This reproduces transformers' `CodeGenTokenizer.truncate` to the character, because the completions users
saw with transformers are the reference: first cut before a second top-level `print`, then before a second
top-level `def`, then before the earliest match of any pattern (each compiled with `re.MULTILINE`, so `^`
means "at a line start"). `truncate_cut` is the one implementation; the stop rule calls it too, with the
completion where it sits in the document and with each language's markers in place of `print`/`def`.

Patterns come from people's settings, so they must never run unbounded (a pattern such as `(a+)+b`
backtracks exponentially: Python's `re` would never return, and nothing can interrupt it):

- literal patterns (an optional `^` and literal characters, escaped where needed: what `re.escape` writes;
  the defaults are all literal) are searched with `str.find`, in linear time;
- other patterns run on the `regex` engine, which takes a timeout. `compile_patterns` refuses a pattern that
  overruns PROBE_TIMEOUT_S on any of a few long probe strings made of its own characters (that is how
  catastrophic backtracking shows), so the setting is refused with a message the person reads; a pattern
  that still overruns on a real completion counts as "no match" there and is logged.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import regex

__all__ = [
    "DEFAULT_TRUNCATE_BEFORE_PATTERN",
    "TRANSFORMERS_MARKERS",
    "Literal",
    "compile_patterns",
    "first_match",
    "literal_pattern",
    "second_marker",
    "truncate_before_pattern",
    "truncate_cut",
]

log = logging.getLogger(__name__)

DEFAULT_TRUNCATE_BEFORE_PATTERN: tuple[str, ...] = (
    "^#",
    re.escape("<|endoftext|>"),
    "^'''",
    '^"""',
    "\n\n\n",
)
# transformers' truncate cuts before a second top-level `print`, then before a second top-level `def`.
TRANSFORMERS_MARKERS: tuple[str, ...] = ("print", "def")

SEARCH_TIMEOUT_S = 0.05  # CPU seconds one non-literal search of a completion may take
PROBE_TIMEOUT_S = 0.05  # ... and one search of a probe string, when the pattern is checked
PROBE_LENGTH = 2000
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v"}
_METACHARACTERS = frozenset(".^$*+?{}[]|()")


@dataclass(frozen=True)
class Literal:
    """A pattern that matches one fixed text, optionally only at line starts."""

    at_line_start: bool
    text: str

    def find(self, s: str, start: int, end: int) -> int | None:
        """Where `re.search(pattern, s[:end], re.M)` from `start` would match, in linear time."""
        text = self.text
        if not self.at_line_start:
            found = s.find(text, start, end)
            return None if found < 0 else found
        if (start == 0 or s[start - 1] == "\n") and s.startswith(text, start) and start + len(text) <= end:
            return start
        found = s.find("\n" + text, max(start - 1, 0), end)
        return None if found < 0 else found + 1


@functools.lru_cache(maxsize=256)
def literal_pattern(pattern: str) -> Literal | None:
    """The fixed text `pattern` matches (`^` kept apart), or None when it is not that simple."""
    at_line_start = pattern.startswith("^")
    chars: list[str] = []
    i = 1 if at_line_start else 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 >= len(pattern):
                return None
            escaped = pattern[i + 1]
            if escaped in _SIMPLE_ESCAPES:
                chars.append(_SIMPLE_ESCAPES[escaped])
            elif escaped.isascii() and not escaped.isalnum():
                chars.append(escaped)
            else:
                return None  # \d, \b, \1, \x41, ...: a class, an assertion or a code we do not decode
            i += 2
            continue
        if char in _METACHARACTERS:
            return None
        chars.append(char)
        i += 1
    return Literal(at_line_start, "".join(chars))


def compile_patterns(patterns: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    """Check `patterns` and compile them with `re.MULTILINE`; cached (the same few come with every request).

    ValueError naming the pattern when it is not a Python regular expression, or when it backtracks so
    much that it cannot be bounded (see the module docstring).
    """
    return _compile(tuple(patterns))


@functools.lru_cache(maxsize=64)
def _compile(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern, re.MULTILINE))
        except (re.error, TypeError) as error:
            raise ValueError(f"invalid truncate_before_pattern {pattern!r}: {error}") from error
        if literal_pattern(pattern) is None:
            _probe(pattern)
    return tuple(compiled)


@functools.lru_cache(maxsize=256)
def _bounded(pattern: str) -> regex.Pattern[str]:
    try:
        return regex.compile(pattern, regex.MULTILINE | regex.VERSION0)
    except (regex.error, TypeError) as error:
        raise ValueError(f"truncate_before_pattern {pattern!r} is not supported: {error}") from error


def _probe(pattern: str) -> None:
    """ValueError when `pattern` overruns PROBE_TIMEOUT_S on a long run of its own characters."""
    compiled = _bounded(pattern)
    own = [char for char in dict.fromkeys(pattern) if char.isalnum() or char.isspace()][:12]
    units = [*own, *("a", "0", " ", "\n", "x"), "".join(own)]
    for unit in dict.fromkeys(unit for unit in units if unit):
        probe = unit * (PROBE_LENGTH // len(unit))
        try:
            compiled.search(probe, timeout=PROBE_TIMEOUT_S)
        except TimeoutError:
            raise ValueError(
                f"truncate_before_pattern {pattern!r} is too slow: one search of {len(probe)} characters took "
                f"over {PROBE_TIMEOUT_S * 1000:.0f} ms (nested repetition such as (a+)+ backtracks "
                "exponentially); simplify it"
            ) from None


def first_match(pattern: str, s: str, start: int, end: int) -> int | None:
    """Start of `pattern`'s first match in s[:end] at or after `start` (as `re.search`), else None.

    Bounded: literal patterns in linear time, others within SEARCH_TIMEOUT_S (an overrun is "no match").
    """
    literal = literal_pattern(pattern)
    if literal is not None:
        return literal.find(s, start, end)
    try:
        match = _bounded(pattern).search(s, start, end, timeout=SEARCH_TIMEOUT_S)
    except TimeoutError:
        log.warning(
            "truncate_before_pattern %r ran over %.0f ms on a %d-character completion: ignored for it",
            pattern,
            SEARCH_TIMEOUT_S * 1000,
            end - start,
        )
        return None
    return None if match is None else match.start()


def second_marker(marker: str, s: str, end: int) -> int:
    """Start of the second occurrence of `marker` at a line start in s[:end] (as finditer counts), else `end`."""
    literal = Literal(True, marker)
    first = literal.find(s, 0, end)
    if first is None:
        return end
    second = literal.find(s, first + len(marker), end)
    return end if second is None else second


def truncate_cut(
    s: str, start: int, end: int, patterns: Sequence[str], markers: Sequence[str] = TRANSFORMERS_MARKERS
) -> int:
    """Where transformers' truncate cuts s[start:end], as it sits in `s`: an index in [start, end].

    The markers are searched from 0 (a `def` on the cursor's line before the completion is the first one),
    the patterns from `start` (so `^` only matches at real line starts and lookbehinds see what precedes).
    With start == 0 and end == len(s) this is exactly `CodeGenTokenizer.truncate(s, patterns)`.
    """
    for marker in markers:
        end = max(start, second_marker(marker, s, end))
    best = end
    for pattern in patterns:
        found = first_match(pattern, s, start, end)  # `end`, not `best`: '$' and lookaheads see up to `end`
        if found is not None and found < best:
            best = found
    return best


def truncate_before_pattern(completion: str, patterns: Sequence[str]) -> str:
    """Exactly `transformers.CodeGenTokenizer.truncate(completion, patterns)`.

    The `print`/`def` cuts apply even when `patterns` is empty (as in transformers' `truncate`); `decode` only
    calls this when it was given a non-empty pattern list, as transformers' `decode` does.
    """
    compile_patterns(patterns)  # ValueError naming a bad pattern
    return completion[: truncate_cut(completion, 0, len(completion), patterns)]
