"""Step 2: the prompt window, the cursor's surroundings, and the stop rule they imply."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen_lsp.inference.rules.stop_rule import StopRule
from codegen_lsp.lsp_server.pipeline.context import block_indent, build_context, stop_rule_for, window_start
from codegen_lsp.lsp_server.pipeline.decide import Mode
from codegen_lsp.lsp_server.pipeline.lexical import Lex
from codegen_lsp.tokenizer.truncation import DEFAULT_TRUNCATE_BEFORE_PATTERN

PATTERNS = DEFAULT_TRUNCATE_BEFORE_PATTERN


def at_cursor(marked: str, max_prompt_chars: int = 10_000):
    """build_context for a document with the cursor written as '|'."""
    offset = marked.index("|")
    return build_context(marked[:offset] + marked[offset + 1 :], offset, max_prompt_chars)


# -- the window ----------------------------------------------------------------------------------------------


def line_starts(text: str) -> set[int]:
    return {0} | {i + 1 for i, c in enumerate(text) if c == "\n"}


def reference_window_start(text: str, offset: int, cap: int) -> int | None:
    """The smallest candidate (first line start at or after a multiple of cap // 4) that fits the cap."""
    chunk = max(1, cap // 4)
    starts = sorted(line_starts(text[: offset + 1]))
    candidates = {min((s for s in starts if s >= k), default=None) for k in range(0, offset + 1, chunk)}
    fitting = [c for c in candidates if c is not None and offset - cap <= c <= offset]
    return min(fitting, default=None)


short_lines = st.lists(st.text("ab(): ", max_size=6), min_size=1, max_size=60).map("\n".join)


@settings(max_examples=300)
@given(text=short_lines, data=st.data(), cap=st.integers(28, 120))
def test_the_window_starts_at_the_earliest_candidate_line_start_that_fits(text: str, data, cap: int) -> None:
    offset = data.draw(st.integers(0, len(text)))
    start = window_start(text, offset, cap)
    assert 0 <= start <= offset and offset - start <= cap
    expected = reference_window_start(text, offset, cap)
    if expected is not None:
        assert start == expected


@settings(max_examples=300)
@given(
    text=short_lines,
    typed=st.text("ab(): \n", min_size=1, max_size=200),
    data=st.data(),
    cap=st.integers(28, 120),
)
def test_typing_at_the_cursor_keeps_the_window_start_while_the_prompt_fits(text, typed, data, cap) -> None:
    offset = data.draw(st.integers(0, len(text)))
    start = window_start(text, offset, cap)
    for n in range(1, len(typed) + 1):
        after = text[:offset] + typed[:n] + text[offset:]
        if offset + n - start > cap:
            break
        assert window_start(after, offset + n, cap) == start


@given(text=st.text("ab \n", max_size=300), data=st.data(), cap=st.integers(1, 100))
def test_the_window_never_exceeds_the_cap_and_starts_at_a_line_when_one_fits(text: str, data, cap: int) -> None:
    offset = data.draw(st.integers(0, len(text)))
    start = window_start(text, offset, cap)
    assert 0 <= start <= offset and offset - start <= cap
    if any(offset - cap <= s <= offset for s in line_starts(text[: offset + 1]) if s <= offset):
        assert start in line_starts(text)


def test_a_short_document_is_the_whole_prompt() -> None:
    ctx = at_cursor("import os\n\ndef main():\n    |")
    assert ctx.prompt == "import os\n\ndef main():\n    "
    assert ctx.prompt_start == 0


def test_the_window_moves_by_about_a_chunk_once_the_prompt_outgrows_the_cap() -> None:
    text = "".join(f"x{i:03} = {i:03}\n" for i in range(200))  # 11-character lines
    starts = [window_start(text, end, 400) for end in range(400, len(text))]
    moves = [b - a for a, b in zip(starts, starts[1:], strict=False) if b != a]
    assert moves and all(89 <= move <= 121 for move in moves)  # a chunk (100), to whole lines
    assert all(s % 11 == 0 for s in starts)  # always a line start


def test_a_line_longer_than_the_window_starts_the_window_in_its_middle() -> None:
    text = "x = '" + "a" * 1000
    start = window_start(text, len(text), 100)
    assert len(text) - start <= 100 and start % 25 == 0


# -- the cursor's surroundings -------------------------------------------------------------------------------


def test_line_prefix_suffix_and_indentation() -> None:
    ctx = at_cursor("def f(x):\n    return g(x, |)\n\nprint(f(1))\n")
    assert ctx.line_prefix == "    return g(x, "
    assert ctx.line_suffix == ")"
    assert ctx.indent == "    " and ctx.indent_width == 4
    assert ctx.following_lines == ("", "print(f(1))", "")
    assert ctx.offset == len("def f(x):\n    return g(x, ")


def test_a_blank_line_is_all_indentation() -> None:
    ctx = at_cursor("def f(x):\n        |\n")
    assert ctx.indent == ctx.line_prefix == "        "


def test_windows_line_endings_stay_out_of_the_suffix_and_following_lines() -> None:
    ctx = at_cursor("a = 1|\r\nb = 2\r\nc = 3\r\n")
    assert ctx.line_suffix == ""
    assert ctx.following_lines == ("b = 2", "c = 3", "")


def test_following_lines_are_bounded() -> None:
    ctx = at_cursor("x = |\n" + "y = 1\n" * 100)
    assert ctx.following_lines == ("y = 1",) * 8
    long_lines = build_context("x\n" + ("z" * 3000 + "\n") * 3, 1, 100)
    assert all(len(line) == 3000 for line in long_lines.following_lines)  # no line cut short


@pytest.mark.parametrize(
    ("marked", "kind", "quote", "docstring"),
    [
        ("def f():\n    return |", Lex.CODE, None, False),
        ("def f():\n    return 1  # the |", Lex.COMMENT, None, False),
        ("print('Hello, |')", Lex.STRING, "'", False),
        ('def f():\n    """Return the |', Lex.LONG_STRING, '"""', True),
        ("class A:\n    '''An A.\n\n    |", Lex.LONG_STRING, "'''", True),
        ('def f():\n    r"""Raw |', Lex.LONG_STRING, '"""', True),
        ('query = """SELECT |', Lex.LONG_STRING, '"""', False),
        ('def f():\n    """Done."""\n    |', Lex.CODE, None, False),
    ],
)
def test_the_lexical_state_at_the_cursor(marked: str, kind: Lex, quote: str | None, docstring: bool) -> None:
    ctx = at_cursor(marked)
    assert (ctx.lex.kind, ctx.lex.quote, ctx.is_docstring) == (kind, quote, docstring)


def test_only_the_window_is_scanned_for_the_lexical_state() -> None:
    body = "x = 1\n" * 2000
    far_away = '"""never closed\n' + body  # the window does not reach the opening quotes
    assert at_cursor(far_away + "|", 1000).lex.kind is Lex.CODE


def test_a_ten_megabyte_document_costs_no_more_than_its_window() -> None:
    document = "def f(x):\n    return x + 1\n" * 400_000  # 10.8 MB
    assert len(document) > 10_000_000
    began = time.perf_counter()
    for i in range(100):
        ctx = build_context(document, len(document) * i // 100, 6144)
        assert len(ctx.prompt) <= 6144
    assert time.perf_counter() - began < 2.0  # ~0.05 ms each here; a whole-document scan is ~10 ms


def test_out_of_range_offsets_are_clamped() -> None:
    assert build_context("abc", 99, 100).line_prefix == "abc"
    assert build_context("abc", -1, 100).line_suffix == "abc"


# -- the stop rule the context implies -----------------------------------------------------------------------


def test_in_a_comment_the_completion_ends_with_the_line() -> None:
    ctx = at_cursor("def f():\n    # compute the |")
    assert stop_rule_for(ctx, PATTERNS, Mode.MULTI_LINE) == StopRule(PATTERNS, ctx.line_prefix, single_line=True)


def test_in_a_docstring_the_completion_ends_after_its_closing_quotes() -> None:
    ctx = at_cursor('def area(r):\n    """Return the |')
    rule = stop_rule_for(ctx, PATTERNS, Mode.MULTI_LINE)
    assert rule.close_after == '"""' and not rule.single_line
    assert rule.apply('area of a circle.\n    """\n    return 3.14 * r * r') == 'area of a circle.\n    """'


def test_in_a_one_line_docstring_with_its_closing_quotes_after_the_cursor() -> None:
    ctx = at_cursor('def area(r):\n    """Return the |"""')
    rule = stop_rule_for(ctx, PATTERNS, Mode.SINGLE_LINE)
    assert rule.close_after == '"""' and rule.single_line


def test_code_after_the_cursor_means_one_line() -> None:
    ctx = at_cursor("print(|)")
    assert stop_rule_for(ctx, PATTERNS, Mode.SINGLE_LINE) == StopRule(PATTERNS, "print(", single_line=True)


@pytest.mark.parametrize(
    ("marked", "limit"),
    [
        ("def f(xs):\n    total = 0\n    |", 4),  # go on within the function body
        ("def f(xs):\n    total = |", 4),
        ("def f(xs):\n    for x in xs:|", 5),  # the loop's body only
        ("def f(xs):|", 1),  # the function's body only
        ("def f(xs):\n|", 1),  # Enter before the editor indented
        ("def f(xs):\n\n    |", 4),
        ("# Examples:\n|", None),  # a comment is no block
        ("import os\n|", None),  # top level: the patterns end it
        ("x = |", None),
        ("class A:\n\tdef f(self):\n\t\t|", 16),
    ],
)
def test_multi_line_code_ends_where_it_leaves_the_block(marked: str, limit: int | None) -> None:
    ctx = at_cursor(marked)
    assert block_indent(ctx) == limit
    assert stop_rule_for(ctx, PATTERNS, Mode.MULTI_LINE) == StopRule(PATTERNS, ctx.line_prefix, min_indent=limit)


def test_a_function_body_completion_stops_before_the_next_top_level_statement() -> None:
    ctx = at_cursor("def mean(xs):|")
    rule = stop_rule_for(ctx, PATTERNS, Mode.MULTI_LINE)
    text = "\n    return sum(xs) / len(xs)\n\nprint(mean([1, 2]))\n"
    assert rule.apply(text) == "\n    return sum(xs) / len(xs)\n\n"


def test_a_method_completion_stops_before_the_next_method() -> None:
    ctx = at_cursor("class Circle:\n    def area(self):|")
    rule = stop_rule_for(ctx, PATTERNS, Mode.MULTI_LINE)
    text = "\n        return 3.14 * self.r ** 2\n\n    def perimeter(self):\n"
    assert rule.cut(text) == text.index("    def perimeter")


def test_the_patterns_setting_is_passed_through() -> None:
    ctx = at_cursor("x = |")
    assert stop_rule_for(ctx, ["^#"], Mode.MULTI_LINE).patterns == ("^#",)
