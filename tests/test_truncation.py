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
    assert truncate_before_pattern(completion, patterns) == hf_tokenizer().truncate(
        completion, list(patterns)
    )


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
    assert (
        tok.decode(ids, truncate_before_pattern=[])
        == text
        == hf_tokenizer().decode(ids, truncate_before_pattern=[])
    )
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
    assert compile_patterns(DEFAULT_TRUNCATE_BEFORE_PATTERN) is compile_patterns(
        list(DEFAULT_TRUNCATE_BEFORE_PATTERN)
    )


def test_bad_pattern_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match=re.escape("'(unclosed'")):
        compile_patterns(["^#", "(unclosed"])
    with pytest.raises(ValueError, match="unclosed"):
        truncate_before_pattern("x", ["(unclosed"])
