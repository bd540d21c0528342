"""CodeGen's `truncate_before_pattern`: cut a completion where the model starts writing something else.

This reproduces transformers' `CodeGenTokenizer.truncate` to the character, because the completions users
saw with transformers are the reference: first cut before a second top-level `print`, then before a second
top-level `def`, then before the earliest match of any pattern (each compiled with `re.MULTILINE`, so `^`
means "at a line start").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

DEFAULT_TRUNCATE_BEFORE_PATTERN: tuple[str, ...] = (
    "^#",
    re.escape("<|endoftext|>"),
    "^'''",
    '^"""',
    "\n\n\n",
)

_PRINT = re.compile("^print", re.MULTILINE)
_DEF = re.compile("^def", re.MULTILINE)


def compile_patterns(patterns: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    """Compile `patterns` with `re.MULTILINE`; cached, since the same few patterns come with every request."""
    return _compile(tuple(patterns))


@functools.lru_cache(maxsize=64)
def _compile(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern, re.MULTILINE))
        except (re.error, TypeError) as error:
            raise ValueError(f"invalid truncate_before_pattern {pattern!r}: {error}") from error
    return tuple(compiled)


def _cut_before_second(completion: str, marker: re.Pattern[str]) -> str:
    first = marker.search(completion)
    if first is None:
        return completion
    # finditer's second match: the next one that starts at or after the end of the first.
    second = marker.search(completion, first.end())
    return completion if second is None else completion[: second.start()]


def truncate_before_pattern(completion: str, patterns: Sequence[str]) -> str:
    """Exactly `transformers.CodeGenTokenizer.truncate(completion, patterns)`.

    The `print`/`def` cuts apply even when `patterns` is empty (as in transformers' `truncate`); `decode` only
    calls this when it was given a non-empty pattern list, as transformers' `decode` does.
    """
    terminals = compile_patterns(patterns)
    completion = _cut_before_second(completion, _PRINT)
    completion = _cut_before_second(completion, _DEF)
    cuts = [m.start() for m in (terminal.search(completion) for terminal in terminals) if m is not None]
    return completion[: min(cuts)] if cuts else completion
