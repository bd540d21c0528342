"""The stop rule: where a completion ends, decided as early as possible and never revised."""

from __future__ import annotations

import pickle
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen_lsp.inference.rules.stop_rule import StopRule, indent_width
from codegen_lsp.tokenizer.truncation import (
    DEFAULT_TRUNCATE_BEFORE_PATTERN,
    Literal,
    literal_pattern,
    truncate_before_pattern,
)

PATTERN_POOL = [
    *DEFAULT_TRUNCATE_BEFORE_PATTERN,
    "^print",
    r"foo$",  # vanishes when the line goes on
    r"\bx\b",
    r"x(?=yz)",
    r"x(?!y)",
    r"(?<=\n)y",
    r"\n\s*\n",  # unbounded reach
    r"^\s*#",  # unbounded reach
    r"x{2,3}",
    r"(?i)DEF",
    r"\Z",
    "",
]
FRAGMENTS = [
    "\n", " ", "    ", "\t", "#", "'''", '"""', "'", '"', "\\", "<|endoftext|>", "<|", "endoftext", "|>",
    "def", "de", "f", "print", "pr", "int", "x", "y", "z", "yz", "foo", "(", ")", ":", "return", "pass",
]  # fmt: skip
texts = st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join)
rules = st.builds(
    StopRule,
    patterns=st.one_of(
        st.just(DEFAULT_TRUNCATE_BEFORE_PATTERN),
        st.lists(st.sampled_from(PATTERN_POOL), max_size=4, unique=True).map(tuple),
    ),
    line_prefix=st.sampled_from(["", "    ", "def", "de", "pr", "print(1)", "x = ", "  # note ", "    '''", "\\"]),
    single_line=st.booleans(),
    close_after=st.sampled_from([None, None, None, '"""', "'''", '"']),
    min_indent=st.sampled_from([None, 0, 1, 4, 8]),
)


# -- the contract: cut is final ------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(rule=rules, text=texts)
def test_a_decided_cut_never_changes_as_text_is_appended(rule: StopRule, text: str) -> None:
    assert_cut_is_final(rule, text)


def assert_cut_is_final(rule: StopRule, text: str) -> None:
    """Typed one character at a time: once `cut` answers, it answers the same, and `final_cut` agrees."""
    decided_at = None
    for end in range(len(text) + 1):
        cut = rule.cut(text[:end])
        if decided_at is None:
            if cut is not None:
                decided_at, decided = end, cut
                assert 0 <= cut <= end
        else:
            assert cut == decided, (text[:decided_at], text[:end])
    if decided_at is not None:
        assert rule.final_cut(text) == decided


@settings(max_examples=300, deadline=None)
@given(rule=rules, text=texts)
def test_final_cut_agrees_with_cut_whenever_cut_is_decided(rule: StopRule, text: str) -> None:
    cut = rule.cut(text)
    final = rule.final_cut(text)
    assert 0 <= final <= len(text)
    if cut is not None:
        assert final == cut
    assert rule.apply(text) == text[:final]


@settings(max_examples=300, deadline=None)
@given(
    text=texts,
    patterns=st.lists(st.sampled_from(PATTERN_POOL), min_size=1, max_size=4, unique=True).map(tuple),
)
def test_without_line_prefix_the_patterns_cut_exactly_like_transformers(text: str, patterns: tuple) -> None:
    rule = StopRule(patterns=patterns)
    assert rule.apply(text) == truncate_before_pattern(text, patterns)


def test_default_rule_is_codegens_truncation() -> None:
    rule = StopRule()
    assert rule.patterns == DEFAULT_TRUNCATE_BEFORE_PATTERN
    text = "    return x\n\n\n\ndef g():\n    pass"
    assert rule.apply(text) == truncate_before_pattern(text, DEFAULT_TRUNCATE_BEFORE_PATTERN) == "    return x"


def test_an_empty_pattern_list_turns_truncation_off_like_transformers_decode() -> None:
    text = "print(1)\nprint(2)\n# comment\ndef f(): pass\ndef g(): pass"
    assert StopRule(patterns=()).apply(text) == text
    assert StopRule(patterns=()).cut(text) is None


# -- deciding early (the worker stops decoding) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("    return x\n#", "    return x\n"),
        ("    return x\n\n\n", "    return x"),
        ("    return x<|endoftext|>", "    return x"),
        ("    return x\n'''", "    return x\n"),
        ('    return x\n"""', "    return x\n"),
        ("def f():\n    pass\ndef", "def f():\n    pass\n"),
        ("print(1)\nprint", "print(1)\n"),
    ],
)
def test_default_patterns_are_decided_as_soon_as_the_match_is_complete(text: str, kept: str) -> None:
    rule = StopRule()
    assert rule.cut(text[:-1]) is None
    assert rule.cut(text) == len(kept)


def test_a_possible_match_still_in_progress_keeps_the_cut_open() -> None:
    rule = StopRule()
    assert rule.cut("    return x\n\n") is None  # a third newline would cut before the first
    assert rule.cut("    return x\n") is None
    assert rule.cut("x = 1<|endof") is None
    assert rule.cut("def f():\n    pass\nde") is None
    assert rule.cut("def f():\n    pass\nde") is None
    assert rule.cut("x = 1\ny = 2") is None


def test_a_pattern_whose_reach_is_unbounded_is_applied_only_to_the_finished_text() -> None:
    rule = StopRule(patterns=(r"\n\s*\n",))
    text = "    return x\n    \n    y = 2"
    assert rule.cut(text) is None
    assert rule.final_cut(text) == len("    return x")


def test_a_pattern_that_is_not_literal_is_applied_only_to_the_finished_text() -> None:
    rule = StopRule(patterns=("foo$",))
    assert rule.cut("x = foo") is None  # "x = foobar" has no match
    assert rule.cut("x = foo\ny = 2\nz") is None  # however much follows: only final_cut applies it
    assert rule.final_cut("x = foo") == len("x = ")
    assert rule.final_cut("x = foobar") == len("x = foobar")
    assert rule.final_cut("x = foo\ny") == len("x = ")


def test_a_non_literal_pattern_still_applies_once_the_structural_cut_is_decided() -> None:
    rule = StopRule(patterns=(r"x\d",), single_line=True)
    assert rule.cut("a = x1 + x2") is None
    assert rule.cut("a = x1 + x2\nmore") == len("a = ")


def test_literal_patterns_are_recognised_without_parsing_regular_expressions() -> None:
    assert literal_pattern("^#") == Literal(True, "#")
    assert literal_pattern(re.escape("<|endoftext|>")) == Literal(False, "<|endoftext|>")
    assert literal_pattern("\n\n\n") == Literal(False, "\n\n\n")
    assert literal_pattern(r"^/\*") == Literal(True, "/*")
    assert literal_pattern(r"a\nb\.") == Literal(False, "a\nb.")
    assert literal_pattern("") == Literal(False, "")
    for pattern in [r"\bx", "x+", "foo$", "(?i)DEF", r"\d", "[ab]", "a|b", r"\Z", "x{2}", "a.b", "\\"]:
        assert literal_pattern(pattern) is None, pattern


# -- the patterns see the completion where it sits in the document -------------------------------------------


def test_a_completion_continuing_its_line_is_not_cut_at_its_first_character() -> None:
    assert StopRule(line_prefix="x = ").apply("'''text'''") == "'''text'''"
    assert StopRule(line_prefix="").apply("'''text'''") == ""  # a real line start
    assert StopRule(line_prefix="    ").apply("# comment\ny") == "# comment\ny"


def test_the_def_being_typed_counts_as_the_first_def() -> None:
    rule = StopRule(line_prefix="def")
    text = " area(r):\n    return 3.14 * r * r\ndef perimeter(r):\n"
    assert rule.cut(text) == len(" area(r):\n    return 3.14 * r * r\n")


def test_a_def_split_between_prefix_and_completion_counts_too() -> None:
    rule = StopRule(line_prefix="de")
    assert rule.apply("f f():\n    pass\ndef g():") == "f f():\n    pass\n"


def test_lookbehind_sees_the_line_prefix() -> None:
    rule = StopRule(patterns=(r"(?<=return )None",), line_prefix="    return ")
    assert rule.apply("None") == ""


# -- structural cuts -----------------------------------------------------------------------------------------


def test_single_line_stops_at_the_first_newline() -> None:
    rule = StopRule(line_prefix="    total = ", single_line=True)
    assert rule.cut("sum(values)") is None
    assert rule.cut("sum(values)\n") == len("sum(values)")
    assert rule.cut("sum(values)\n    return total") == len("sum(values)")


def test_single_line_in_a_comment_still_stops_at_the_line_end() -> None:
    rule = StopRule(line_prefix="    # compute the", single_line=True)
    assert rule.apply(" mean of the values\n    mean = sum(values) / len(values)") == " mean of the values"


def test_multi_line_stops_where_a_line_leaves_the_block() -> None:
    rule = StopRule(line_prefix="    ", min_indent=4)
    text = "total = 0\n    for v in values:\n        total += v\n\n    return total\nclass Next:\n"
    assert rule.cut(text) == text.index("class Next")
    assert rule.apply(text) == text[: text.index("class Next")]


def test_blank_lines_do_not_end_a_block_but_the_next_dedented_line_does() -> None:
    rule = StopRule(line_prefix="    ", min_indent=4)
    assert rule.cut("x = 1\n\n  \n") is None
    assert rule.cut("x = 1\n\n    ") is None  # indentation not shown yet
    assert rule.cut("x = 1\n\n    y") is None
    assert rule.cut("x = 1\n\n  y") == len("x = 1\n\n")


def test_the_first_line_of_a_completion_is_never_cut_for_its_indentation() -> None:
    rule = StopRule(line_prefix="def f():", min_indent=1)
    text = "\n    return 1\nprint(f())\n"
    assert rule.apply(text) == "\n    return 1\n"


def test_tabs_count_to_the_next_multiple_of_eight() -> None:
    assert indent_width("\t") == 8
    assert indent_width("  \t") == 8
    assert indent_width("\t  ") == 10
    assert indent_width("    x = 1") == 4
    rule = StopRule(line_prefix="\t", min_indent=8)
    assert rule.apply("x = 1\n\ty = 2\n    z") == "x = 1\n\ty = 2\n"


def test_a_docstring_ends_right_after_its_closing_quotes() -> None:
    rule = StopRule(line_prefix='    """', close_after='"""')
    text = 'Return the area.\n\n    Args:\n        r: radius\n    """\n    return 3.14 * r * r\n'
    assert rule.cut(text) == text.index('"""') + 3
    assert rule.apply(text).endswith('    """')


def test_truncation_patterns_do_not_cut_a_docstring_body() -> None:
    rule = StopRule(line_prefix='    """', close_after='"""')
    body = "Summary.\n\n\n# not a comment\n'''quoted'''\n"
    assert rule.cut(body) is None
    assert rule.apply(body + '"""\nx') == body + '"""'


def test_escaped_quotes_do_not_close_the_docstring() -> None:
    rule = StopRule(line_prefix="    '''", close_after="'''")
    assert rule.cut("It\\'''s") is None
    assert rule.cut("It\\'''s'''") == len("It\\'''s'''")
    assert rule.cut("ends with a backslash \\") is None
    assert StopRule(line_prefix="    '''\\", close_after="'''").cut("'''x'''") == len("'''x'''")


def test_a_docstring_completed_mid_line_stops_at_the_newline_or_the_quotes() -> None:
    rule = StopRule(line_prefix='    """Return', single_line=True, close_after='"""')
    assert rule.apply(' the area."""\n    return x') == ' the area."""'
    assert rule.apply(" the area\n    more") == " the area"


# -- the value itself ----------------------------------------------------------------------------------------


def test_the_rule_crosses_a_process_boundary_unchanged() -> None:
    rule = StopRule(patterns=("^#", r"\n\n"), line_prefix="    x = ", single_line=True, min_indent=4)
    copy = pickle.loads(pickle.dumps(rule))
    assert copy == rule
    assert copy.cut("1\n") == rule.cut("1\n") == 1


def test_patterns_given_as_a_list_become_a_tuple() -> None:
    rule = StopRule(patterns=["^#"])  # type: ignore[arg-type]
    assert rule.patterns == ("^#",)
    assert hash(rule) == hash(StopRule(patterns=("^#",)))


def test_an_invalid_pattern_is_refused_when_the_rule_is_built() -> None:
    with pytest.raises(ValueError, match=r"\("):
        StopRule(patterns=("(",))


def test_a_line_prefix_is_one_line() -> None:
    with pytest.raises(ValueError):
        StopRule(line_prefix="a\nb")


def test_stop_rule_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, codegen_lsp.inference.rules.stop_rule; "
        "print('torch' in sys.modules or 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
