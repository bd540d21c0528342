"""truncate_before_pattern cuts completions exactly where transformers' CodeGenTokenizer.truncate does."""

from __future__ import annotations

import functools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen_lsp.tokenizer import (
    BUNDLED_TOKENIZER_DIR,
    DEFAULT_TRUNCATE_BEFORE_PATTERN,
    CodeGenTokenizer,
    compile_patterns,
    truncate_before_pattern,
)

PATTERN_POOL = [
    *DEFAULT_TRUNCATE_BEFORE_PATTERN,
    "^print",
    "^def",
    "\n\n",
    "^    #",
    r"^\S",
    "x+",
    "",  # matches at once: everything is cut
]
FRAGMENTS = ["def ", "print(", "#", "'''", '"""', "\n", "x", " ", "    ", "<|endoftext|>", "\t", "y = 1"]
code_text = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)
pattern_subsets = st.lists(st.sampled_from(PATTERN_POOL), max_size=5, unique=True)

CASES = [
    ("    return x\n# a comment\nmore", DEFAULT_TRUNCATE_BEFORE_PATTERN),
    ("    return x\n    # indented comments stay\n    y", DEFAULT_TRUNCATE_BEFORE_PATTERN),
    ('    return x\n"""docstring of the next thing"""\n', DEFAULT_TRUNCATE_BEFORE_PATTERN),
    ("    return x\n'''docstring'''\n", DEFAULT_TRUNCATE_BEFORE_PATTERN),
    ("    return x\n\n\n\ndef g():\n    pass", DEFAULT_TRUNCATE_BEFORE_PATTERN),
    ("    return x<|endoftext|>import os", DEFAULT_TRUNCATE_BEFORE_PATTERN),
    ("def f():\n    pass\ndef g():\n    pass\ndef h(): pass", DEFAULT_TRUNCATE_BEFORE_PATTERN),
    ("x = 1\ndef f():\n    pass\ndef g():\n    pass", DEFAULT_TRUNCATE_BEFORE_PATTERN),
    ("print(1)\nprint(2)\nprint(3)", DEFAULT_TRUNCATE_BEFORE_PATTERN),
    ("  print(1)\nprint(2)\n  print(3)\nprint(4)", ["^#"]),
    ("print(1)\ndef f():\nprint(2)\ndef g():", ["^#"]),
    ("no match here\n\n", DEFAULT_TRUNCATE_BEFORE_PATTERN),
    ("a\n#b\n'''c\n\n\nd", ["\n\n\n", "^'''"]),
    ("", DEFAULT_TRUNCATE_BEFORE_PATTERN),
    ("anything", [""]),
]


@functools.cache
def hf_tokenizer():
    from transformers import CodeGenTokenizer as HFCodeGenTokenizer

    return HFCodeGenTokenizer.from_pretrained(str(BUNDLED_TOKENIZER_DIR))


def test_default_patterns_are_codegens():
    assert DEFAULT_TRUNCATE_BEFORE_PATTERN == ("^#", re.escape("<|endoftext|>"), "^'''", '^"""', "\n\n\n")


@pytest.mark.parametrize("completion, patterns", CASES)
def test_equals_transformers_truncate(completion, patterns):
    assert truncate_before_pattern(completion, patterns) == hf_tokenizer().truncate(completion, list(patterns))


def test_hand_written_cuts():
    assert truncate_before_pattern("    return x\n# c", DEFAULT_TRUNCATE_BEFORE_PATTERN) == "    return x\n"
    assert truncate_before_pattern("def f():\n    pass\ndef g():", []) == "def f():\n    pass\n"
    assert truncate_before_pattern("print(1)\nprint(2)", []) == "print(1)\n"
    assert truncate_before_pattern("a\n\n\nb", DEFAULT_TRUNCATE_BEFORE_PATTERN) == "a"
    assert truncate_before_pattern("a<|endoftext|>b", DEFAULT_TRUNCATE_BEFORE_PATTERN) == "a"


@pytest.mark.parametrize("completion, patterns", CASES)
@pytest.mark.parametrize("skip", [False, True])
def test_decode_with_patterns_equals_transformers(completion, patterns, skip):
    tok = CodeGenTokenizer.bundled()
    ids = tok.encode(completion)
    expected = hf_tokenizer().decode(ids, skip_special_tokens=skip, truncate_before_pattern=list(patterns))
    assert tok.decode(ids, skip_special_tokens=skip, truncate_before_pattern=patterns) == expected


def test_decode_with_no_patterns_does_not_truncate():
    """As in transformers: only a non-empty pattern list truncates, so the print/def cuts need one too."""
    tok = CodeGenTokenizer.bundled()
    text = "print(1)\nprint(2)\ndef f():\ndef g():"
    ids = tok.encode(text)
    assert tok.decode(ids, truncate_before_pattern=[]) == text == hf_tokenizer().decode(ids, truncate_before_pattern=[])
    assert tok.decode(ids, truncate_before_pattern=None) == text


@settings(max_examples=500, deadline=None)
@given(code_text, pattern_subsets)
def test_equals_transformers_on_random_code(completion, patterns):
    assert truncate_before_pattern(completion, patterns) == hf_tokenizer().truncate(completion, patterns)


@settings(max_examples=100, deadline=None)
@given(code_text, pattern_subsets.filter(bool))
def test_decode_equals_transformers_on_random_code(completion, patterns):
    tok = CodeGenTokenizer.bundled()
    ids = tok.encode(completion)
    expected = hf_tokenizer().decode(ids, truncate_before_pattern=patterns)
    assert tok.decode(ids, truncate_before_pattern=patterns) == expected


def test_compiled_patterns_are_multiline_and_cached():
    compiled = compile_patterns(["^#", "\n\n\n"])
    assert all(p.flags & re.MULTILINE for p in compiled)
    assert compile_patterns(("^#", "\n\n\n")) is compiled
    assert compile_patterns(DEFAULT_TRUNCATE_BEFORE_PATTERN) is compile_patterns(list(DEFAULT_TRUNCATE_BEFORE_PATTERN))


def test_bad_pattern_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match=re.escape("'(unclosed'")):
        compile_patterns(["^#", "(unclosed"])
    with pytest.raises(ValueError, match="unclosed"):
        truncate_before_pattern("x", ["(unclosed"])


# -- user patterns never run unbounded -----------------------------------------------------------------------


@pytest.mark.parametrize("pattern", [r"(a+)+b", r"(a|aa)+b", r"(x+x+)+y"])
def test_a_pattern_that_backtracks_catastrophically_is_refused_by_name(pattern: str) -> None:
    with pytest.raises(ValueError, match="too slow") as refused:
        compile_patterns(["^#", pattern])
    assert repr(pattern) in str(refused.value)


def test_a_slow_search_at_run_time_is_cut_off_and_counts_as_no_match(caplog) -> None:
    from codegen_lsp.tokenizer.truncation import first_match

    text = "a" * 5_000  # not probed: first_match is what runs when a completion is cut
    with caplog.at_level("WARNING"):
        assert first_match("(a|aa)+b", text, 0, len(text)) is None
    assert "ran over" in caplog.text


@pytest.mark.parametrize("pattern", [r"^\s*#", r"\n\s*\n", r"x+", r"^\S", r"(?i)DEF", r"\bfoo\b", r"foo$"])
def test_ordinary_patterns_pass_the_check(pattern: str) -> None:
    assert compile_patterns([pattern])[0].pattern == pattern


literal_text = st.lists(st.sampled_from(["#", "\n", "a", "<|", "|>", "*", "/", "^", " "]), max_size=20).map("".join)


@settings(max_examples=300, deadline=None)
@given(literal_text, literal_text, st.booleans(), st.integers(0, 25), st.integers(0, 25))
def test_literal_patterns_find_what_re_finds(text: str, needle: str, anchored: bool, start: int, end: int) -> None:
    from codegen_lsp.tokenizer.truncation import first_match, literal_pattern

    pattern = ("^" if anchored else "") + re.escape(needle)
    assert literal_pattern(pattern) is not None
    start, end = min(start, len(text)), min(end, len(text))
    match = re.compile(pattern, re.MULTILINE).search(text, start, end)
    assert first_match(pattern, text, start, end) == (None if match is None else match.start())
