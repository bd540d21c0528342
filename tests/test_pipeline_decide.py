"""Step 1: whether to complete, and single- or multi-line."""

from __future__ import annotations

import pytest

from codegen_lsp.lsp_server.pipeline.decide import Mode, choose_mode, decide, is_identifier_char, should_complete


@pytest.mark.parametrize(
    ("line", "character"),
    [
        ("print(valu|e)", 10),
        ("|name = 1", 0),
        ("x = |données", 4),  # unicode letters
        ("x = |变量", 4),
        ("x = a|1", 5),  # digits continue identifiers
        ("x = e|\u0301", 5),  # a combining mark continues the word
        ("x = |_private", 4),
    ],
)
def test_no_automatic_completion_in_front_of_an_identifier(line: str, character: int) -> None:
    line = line.replace("|", "")
    assert not should_complete(line, character, invoked=False)
    assert decide(line, character, invoked=False) is None


def test_an_explicit_invoke_completes_even_in_front_of_an_identifier() -> None:
    assert should_complete("print(value)", 10, invoked=True)
    assert decide("print(value)", 10, invoked=True) is Mode.SINGLE_LINE


@pytest.mark.parametrize(
    ("line", "character"),
    [
        ("def area(r):", 12),
        ("print(|)", 6),
        ("x = |  ", 4),
        ("x = [|]", 5),
        ("s = '|'", 5),
        ("x = 🙂", 4),
        ("", 0),
    ],
)
def test_automatic_completion_when_no_word_follows_the_cursor(line: str, character: int) -> None:
    assert should_complete(line.replace("|", ""), character, invoked=False)


def test_multi_line_at_the_end_of_a_line() -> None:
    assert choose_mode("def area(r):", 12) is Mode.MULTI_LINE
    assert choose_mode("    ", 4) is Mode.MULTI_LINE
    assert choose_mode("", 0) is Mode.MULTI_LINE


def test_multi_line_when_only_whitespace_follows_the_cursor() -> None:
    assert choose_mode("x = 1   \r", 5) is Mode.MULTI_LINE


def test_single_line_when_code_follows_the_cursor() -> None:
    assert choose_mode("print()", 6) is Mode.SINGLE_LINE
    assert choose_mode("total = |  + 1".replace("|", ""), 8) is Mode.SINGLE_LINE
    assert choose_mode("x = {}", 5) is Mode.SINGLE_LINE


def test_positions_past_the_line_are_clamped() -> None:
    assert choose_mode("abc", 99) is Mode.MULTI_LINE
    assert should_complete("abc", 99, invoked=False)
    assert choose_mode("abc", -5) is Mode.SINGLE_LINE
    assert not should_complete("abc", -5, invoked=False)


def test_identifier_characters() -> None:
    assert all(is_identifier_char(c) for c in "aZ_9é变\u0301")
    assert not any(is_identifier_char(c) for c in " ()[].,:'\"#🙂-+")
    assert not is_identifier_char("")
