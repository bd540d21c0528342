"""The prompt window: which part of a long prompt the model sees. Torch-free.

When the prompt does not fit the budget, text is dropped from the left in whole chunks of tokens and the cut
moves on to the next line start. While a person types at the end, the number of dropped chunks stays the same
for `chunk` tokens of typing, so the window keeps its start and the KV cache keeps being reused.

A chunk is never more than half the budget: rounding the drop up to a whole chunk then always leaves at least
half the budget (a 256-token chunk with a 32-token budget would drop the whole document). When the cut at a
line start still does not fit (a line longer than the budget), the window is the longest tail that fits.
"""

from __future__ import annotations

from collections.abc import Callable

WINDOW_CHUNK_TOKENS = 256
_LINE_START_TRIES = 4  # chunks tried at line starts before the token-exact tail (each try tokenizes once)


def line_start_at_or_after(text: str, index: int) -> int:
    """The first line start >= index; `index` itself when no line starts after it (one very long line)."""
    if index <= 0:
        return 0
    newline = text.find("\n", index - 1)
    return newline + 1 if newline != -1 else index


def fit_window(
    text: str,
    encode_with_offsets: Callable[[str], tuple[list[int], list[tuple[int, int]]]],
    budget: int,
    chunk: int = WINDOW_CHUNK_TOKENS,
) -> tuple[list[int], int]:
    """(token ids of text[start:], start) with at most `budget` tokens. See the module docstring."""
    if budget <= 0:
        raise ValueError(f"the prompt budget must be positive, got {budget}")
    ids, offsets = encode_with_offsets(text)
    if len(ids) <= budget:
        return ids, 0
    chunk = max(1, min(chunk, budget // 2))
    drop = -(-(len(ids) - budget) // chunk) * chunk  # whole chunks, rounded up: at most len(ids) - budget // 2
    for _ in range(_LINE_START_TRIES):
        if drop >= len(ids):
            break
        start = line_start_at_or_after(text, offsets[drop][0])
        window, _ = encode_with_offsets(text[start:])
        if 0 < len(window) <= budget:
            return window, start
        drop += chunk
    return _longest_tail(text, encode_with_offsets, ids, offsets, budget)


def _longest_tail(
    text: str,
    encode_with_offsets: Callable[[str], tuple[list[int], list[tuple[int, int]]]],
    ids: list[int],
    offsets: list[tuple[int, int]],
    budget: int,
) -> tuple[list[int], int]:
    """The tail of `text` from a token boundary with the most tokens <= budget (re-tokenizing a tail can merge
    or split a token at its start, hence the steps back)."""
    keep = min(budget, len(ids))
    while keep > 1:
        start = offsets[len(ids) - keep][0]
        window, _ = encode_with_offsets(text[start:])
        if len(window) <= budget:
            return window, start
        keep -= len(window) - budget
    return ids[-1:], offsets[-1][0]  # the last token, as the text's tokenization has it
