"""The prompt window: cut at line starts, in whole chunks, and stable while a person types at the end."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from codegen_lsp.inference.rules.window import fit_window, line_start_at_or_after
from codegen_lsp.tokenizer import CodeGenTokenizer

TOKENIZER = CodeGenTokenizer.bundled()
ENCODE = TOKENIZER.encode_with_offsets
LINES = [f"    value_{i} = compute({i}, 'text {i}')  # line {i}\n" for i in range(400)]
SOURCE = "".join(LINES)
LINE_TOKENS = max(len(TOKENIZER.encode(line)) for line in LINES)


def test_a_prompt_within_budget_is_kept_whole():
    ids, start = fit_window("def f():\n    return 1\n", ENCODE, budget=100)
    assert start == 0 and ids == TOKENIZER.encode("def f():\n    return 1\n")


def test_a_long_prompt_is_cut_at_a_line_start_and_fits():
    ids, start = fit_window(SOURCE, ENCODE, budget=500, chunk=64)
    assert 0 < start and SOURCE[start - 1] == "\n"
    assert len(ids) <= 500
    assert ids == TOKENIZER.encode(SOURCE[start:])


def test_the_cut_drops_whole_chunks_only_as_needed():
    total = len(TOKENIZER.encode(SOURCE))
    ids, _ = fit_window(SOURCE, ENCODE, budget=total - 10, chunk=64)
    assert total - 64 - 40 <= len(ids) <= total - 10  # one chunk dropped, then up to a line start


def test_a_single_huge_line_is_cut_mid_line():
    text = "x = [" + ", ".join(str(i) for i in range(3000)) + "]"
    ids, start = fit_window(text, ENCODE, budget=200, chunk=64)
    assert len(ids) <= 200 and start > 0


def test_line_start_at_or_after():
    assert line_start_at_or_after("ab\ncd\nef", 0) == 0
    assert line_start_at_or_after("ab\ncd\nef", 1) == 3
    assert line_start_at_or_after("ab\ncd\nef", 3) == 3
    assert line_start_at_or_after("ab\ncd\nef", 4) == 6
    assert line_start_at_or_after("abcdef", 2) == 2


@settings(max_examples=40, deadline=None)
@given(cursor=st.integers(min_value=3000, max_value=len(SOURCE) - 400), typed=st.integers(1, 120))
def test_typing_at_the_end_keeps_the_window_start_within_a_chunk(cursor, typed):
    """Typing n characters adds at most n tokens; the start moves only when a chunk boundary is crossed,
    so over any stretch of typing the start changes at most once per chunk of tokens added."""
    chunk, budget = 128, 600
    starts = []
    for n in range(0, typed, 7):
        _, start = fit_window(SOURCE[: cursor + n], ENCODE, budget, chunk)
        starts.append(start)
    assert starts == sorted(starts)  # the window only moves forward
    assert len(set(starts)) <= 1 + typed // chunk + 1


@settings(max_examples=60, deadline=None)
@given(budget=st.integers(1, 700), length=st.integers(1, 400))
def test_any_budget_keeps_the_longest_window_that_fits(budget, length):
    """A chunk larger than the budget (256 tokens, budget 32) once dropped the whole document but its last
    token: whatever the budget, the window holds at least half of it (or the whole document), less the part of
    a line dropped to start at a line start."""
    text = "".join(LINES[:length])
    total = len(TOKENIZER.encode(text))
    ids, start = fit_window(text, ENCODE, budget)
    assert ids == TOKENIZER.encode(text[start:])
    assert len(ids) <= budget
    assert len(ids) >= min(total, budget // 2) - LINE_TOKENS


def test_the_issue_case_budget_32_on_a_384_token_document():
    text = "".join(LINES)[: 384 * 3]
    while len(TOKENIZER.encode(text)) > 384:
        text = text[:-10]
    ids, start = fit_window(text, ENCODE, budget=32)
    assert 16 <= len(ids) <= 32 and text[start - 1] == "\n"


def test_one_line_longer_than_the_budget_keeps_its_longest_tail():
    text = "x = [" + ", ".join(str(i) for i in range(3000)) + "]"
    ids, start = fit_window(text, ENCODE, budget=40, chunk=256)
    assert 30 <= len(ids) <= 40 and ids == TOKENIZER.encode(text[start:])
