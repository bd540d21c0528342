"""The prompt window: which part of a long prompt the model sees. Torch-free.

When the prompt does not fit the budget, text is dropped from the left in whole chunks of tokens and the cut
moves on to the next line start. While a person types at the end, the number of dropped chunks stays the same
for `chunk` tokens of typing, so the window keeps its start and the KV cache keeps being reused.
"""

from __future__ import annotations

from collections.abc import Callable

WINDOW_CHUNK_TOKENS = 256


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
    drop = -(-(len(ids) - budget) // chunk) * chunk  # whole chunks, rounded up
    while True:
        if drop >= len(ids):
            start = offsets[-1][0]  # never empty: keep at least the last token's text
        else:
            start = line_start_at_or_after(text, offsets[drop][0])
        window, _ = encode_with_offsets(text[start:])
        if len(window) <= budget or drop >= len(ids):
            return window[-budget:] if len(window) > budget else window, start
        drop += chunk
