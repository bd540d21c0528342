"""Step 4: from what the model wrote to what the editor shows."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen_lsp.inference.rules.syntax import SYNTAXES
from codegen_lsp.lsp_server.pipeline.context import CompletionContext, build_context, stop_rule_for
from codegen_lsp.lsp_server.pipeline.decide import Mode, choose_mode
from codegen_lsp.lsp_server.pipeline.lexical import CODE, Lex, LexState, first_unmatched_closer
from codegen_lsp.lsp_server.pipeline.postprocess import postprocess
from codegen_lsp.tokenizer.truncation import DEFAULT_TRUNCATE_BEFORE_PATTERN

PATTERNS = DEFAULT_TRUNCATE_BEFORE_PATTERN
PY = SYNTAXES["python"]


def complete(marked: str, raw: str) -> str:
    """What the editor shows when the model answers `raw` at the '|' in `marked`."""
    offset = marked.index("|")
    text = marked[:offset] + marked[offset + 1 :]
    ctx = build_context(text, offset, 10_000)
    line_end = text.find("\n", offset)
    line = text[text.rfind("\n", 0, offset) + 1 : len(text) if line_end < 0 else line_end]
    mode = choose_mode(line, len(ctx.line_prefix))
    return postprocess(raw, ctx, stop_rule_for(ctx, PATTERNS, mode))


# -- the stop rule and the block -----------------------------------------------------------------------------


def test_a_function_body_ends_before_the_next_top_level_code() -> None:
    raw = "\n    return 3.14 * r * r\n\nprint(area(2))\n"
    assert complete("def area(r):|", raw) == "\n    return 3.14 * r * r"


def test_a_method_body_ends_before_the_next_method() -> None:
    raw = "\n        return self.w * self.h\n\n    def perimeter(self):\n        return 2 * (self.w + self.h)"
    assert complete("class Rect:\n    def area(self):|", raw) == "\n        return self.w * self.h"


def test_statements_go_on_within_the_block_until_it_ends() -> None:
    raw = "total = 0\n    for x in xs:\n        total += x\n    return total\n\ndef other():\n    pass"
    assert complete("def total(xs):\n    |", raw) == "total = 0\n    for x in xs:\n        total += x\n    return total"


def test_codegen_patterns_still_apply() -> None:
    assert complete("import os\n|", "import sys\n# Helpers\ndef f(): pass") == "import sys"
    assert complete("x = |", "1<|endoftext|>garbage") == "1"


def test_a_comment_is_completed_to_the_end_of_its_line_only() -> None:
    raw = " mean of the values\n    return sum(xs) / len(xs)"
    assert complete("def mean(xs):\n    # compute the|", raw) == " mean of the values"


def test_a_docstring_ends_with_its_closing_quotes() -> None:
    raw = 'area of a circle.\n\n    Args:\n        r: the radius.\n    """\n    return 3.14 * r * r\n'
    expected = 'area of a circle.\n\n    Args:\n        r: the radius.\n    """'
    assert complete('def area(r):\n    """Return the |', raw) == expected


def test_a_one_line_docstring_does_not_repeat_the_closing_quotes_after_the_cursor() -> None:
    assert complete('def area(r):\n    """Return the |"""', 'area."""\n    return 1') == "area."


# -- what is right of the cursor -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("marked", "raw", "shown"),
    [
        ("print(|)", "a, b)", "a, b"),
        ("print(|)", "f(x))", "f(x)"),
        ("print(|)", "f(x)", "f(x)"),  # its own brackets stay
        ("total = sum(|)", "values) + 1", "values"),  # what follows the closer contradicts the line
        ("xs = [|]", "1, 2, 3]", "1, 2, 3"),
        ("d = {|}", '"a": 1}', '"a": 1'),
        ('print("Hello, |")', 'world!")', "world!"),
        ('name = d["ke|"]', 'y"]', "y"),
        ("f(a|, c)", "b, c)", "b"),
        ("if check(|):", "x, y):", "x, y"),
        ("x = foo(|) + 1", "a) + 1", "a"),
        ("print(|)", "a, b )", "a, b"),
        ("x|", "_total", "_total"),
        ("x| = 1", "_total = 1", "_total"),
        ("return |value", "not ", "not "),  # the space before the word stays
        ("print(|)", ")", ""),
    ],
)
def test_text_right_of_the_cursor_is_not_repeated(marked: str, raw: str, shown: str) -> None:
    assert complete(marked, raw) == shown


def test_lines_that_repeat_the_next_lines_of_the_document_are_dropped() -> None:
    doc = "def total(xs):\n    |\n    return result\n"
    assert complete(doc, "result = sum(xs)\n    return result") == "result = sum(xs)"
    assert complete(doc, "return result") == ""


def test_a_closing_bracket_line_that_is_already_there_is_dropped() -> None:
    doc = "config = dict(\n    |\n)\n"
    assert complete(doc, 'name="x",\n    size=3,\n)') == 'name="x",\n    size=3,'


def test_a_repeat_cut_short_by_the_token_limit_is_dropped_too() -> None:
    doc = "def f():\n    x = 1|\n    y = 2\n    return x + y\n"
    assert complete(doc, "\n    y = 2\n    retu") == ""
    assert complete(doc, "\n    z = 3\n    ret") == "\n    z = 3\n    ret"  # no whole line matched


# -- whitespace ----------------------------------------------------------------------------------------------


def test_trailing_whitespace_is_trimmed() -> None:
    assert complete("def f():\n    x = |", "1   \n\n  ") == "1"


@pytest.mark.parametrize("raw", ["", "   ", "\n", "\n    ", "\n\n\n"])
def test_a_completion_of_only_whitespace_is_dropped(raw: str) -> None:
    # A newline + indent alone shows no ghost text; the editor's Enter does the same.
    assert complete("def f():|", raw) == ""


def test_leading_newline_and_indentation_of_a_block_stay() -> None:
    assert complete("def f():|", "\n    pass") == "\n    pass"


# -- properties ----------------------------------------------------------------------------------------------

suffixes = st.lists(st.sampled_from([")", "]", "}", "x", " ", "+ 1", ",", '"', ":", "(", "y"]), min_size=1, max_size=4)
completions = st.lists(
    st.sampled_from(["a", " ", "(", ")", "[", "]", "{", "}", '"', "'", ",", "x", "+ 1", ":", "\n", "#"]),
    max_size=14,
)


def ctx_with(line_prefix: str, suffix: str, lex: LexState = CODE) -> CompletionContext:
    return CompletionContext(
        prompt=line_prefix, prompt_start=0, line_prefix=line_prefix, line_suffix=suffix,
        following_lines=(), indent="", lex=lex,
    )  # fmt: skip


@settings(max_examples=400)
@given(suffix_parts=suffixes, raw_parts=completions, in_string=st.booleans())
def test_the_result_never_duplicates_the_text_right_of_the_cursor(suffix_parts, raw_parts, in_string) -> None:
    suffix, raw = "".join(suffix_parts), "".join(raw_parts)
    lex = LexState(Lex.STRING, '"') if in_string else CODE
    ctx = ctx_with("f(", suffix, lex)
    mode = Mode.SINGLE_LINE if suffix.strip() else Mode.MULTI_LINE
    shown = postprocess(raw, ctx, stop_rule_for(ctx, PATTERNS, mode))
    assert raw.startswith(shown)  # post-processing only shortens
    if first_unmatched_closer(suffix.strip(), PY, lex) is not None:
        assert first_unmatched_closer(shown, PY, lex) is None  # does not close what the suffix closes
    elif suffix.strip():
        assert not shown.rstrip().endswith(suffix.strip()) or not shown.strip()


@settings(max_examples=200)
@given(raw=st.text(st.sampled_from("ab \n\t#()'\""), max_size=30), suffix=st.sampled_from(["", ")", "x", "  "]))
def test_the_result_is_a_prefix_of_the_model_output_and_never_only_whitespace(raw: str, suffix: str) -> None:
    ctx = ctx_with("    x = ", suffix)
    mode = Mode.SINGLE_LINE if suffix.strip() else Mode.MULTI_LINE
    shown = postprocess(raw, ctx, stop_rule_for(ctx, PATTERNS, mode))
    assert raw.startswith(shown)
    assert shown == "" or shown.strip()
