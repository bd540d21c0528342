"""The small Python lexer: code, comment or string at a point, and what a completion closes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codegen_lsp.lsp_server.pipeline.lexical import CODE, Lex, LexState, first_unmatched_closer, scan


@pytest.mark.parametrize(
    ("text", "kind", "quote"),
    [
        ("x = 1\n", Lex.CODE, None),
        ("x = 1  # the answer", Lex.COMMENT, None),
        ("x = 1  # the answer\ny = ", Lex.CODE, None),
        ("name = 'Ada", Lex.STRING, "'"),
        ('name = "Ada', Lex.STRING, '"'),
        ('name = "Ada" + ', Lex.CODE, None),
        ("name = 'it\\'s", Lex.STRING, "'"),
        ("name = 'unterminated\nx = ", Lex.CODE, None),
        ("s = 'a \\\ncontinued", Lex.STRING, "'"),
        ('def f():\n    """Return the', Lex.TRIPLE_STRING, '"""'),
        ("def f():\n    '''Return\n\n    more", Lex.TRIPLE_STRING, "'''"),
        ('def f():\n    """Done."""\n    return ', Lex.CODE, None),
        ('x = """# not a comment', Lex.TRIPLE_STRING, '"""'),
        ("# it's a comment, not a string", Lex.COMMENT, None),
        ('s = "a # not a comment', Lex.STRING, '"'),
        ('s = """a "quoted" word', Lex.TRIPLE_STRING, '"""'),
        ('s = """ends with two quotes ""', Lex.TRIPLE_STRING, '"""'),
        ('s = """ends with an escaped quote \\"""', Lex.TRIPLE_STRING, '"""'),
        ("s = r'raw \\' still open", Lex.STRING, "'"),
        ("s = ''", Lex.CODE, None),
        ("s = '''", Lex.TRIPLE_STRING, "'''"),
        ("s = 'backslash at the end \\", Lex.STRING, "'"),
    ],
)
def test_scan_tells_what_the_end_of_the_text_is_in(text: str, kind: Lex, quote: str | None) -> None:
    state = scan(text)
    assert (state.kind, state.quote) == (kind, quote)


def test_scan_records_where_the_open_string_started() -> None:
    text = 'def f():\n    """Return'
    assert scan(text).opened_at == text.index('"""')


lines = st.lists(
    st.lists(st.sampled_from(["x", " ", "#", "'", '"', "'''", '"""', "\\", "(", ")"]), max_size=8).map(
        "".join
    ),
    max_size=8,
)


@given(head=lines, tail=lines)
def test_scanning_in_pieces_split_at_line_ends_gives_the_same_state(head: list[str], tail: list[str]) -> None:
    first = "".join(line + "\n" for line in head)
    second = "\n".join(tail)
    whole, pieces = scan(first + second), scan(second, scan(first))
    assert (whole.kind, whole.quote) == (pieces.kind, pieces.quote)


@pytest.mark.parametrize(
    ("completion", "state", "expected"),
    [
        ("a, b)", CODE, 4),
        ("f(x)", CODE, None),
        ("f(x))", CODE, 4),
        ("[1, 2]]", CODE, 6),
        ("x]", CODE, 1),
        ("(x]", CODE, 2),  # mismatched
        ("')' + x)", CODE, 7),  # brackets in strings do not count
        ("x  # )\ny)", CODE, 8),  # nor in comments
        (', world")', LexState(Lex.STRING, '"'), 7),  # closes the string the cursor is in
        ('key"]', LexState(Lex.STRING, '"'), 3),
        ('a \\" b"', LexState(Lex.STRING, '"'), 6),
        ('Return the area."""', LexState(Lex.TRIPLE_STRING, '"""'), 16),
        ('"inner") + ("x")', CODE, 7),
    ],
)
def test_first_unmatched_closer_finds_what_closes_text_before_the_completion(
    completion: str, state: LexState, expected: int | None
) -> None:
    assert first_unmatched_closer(completion, state) == expected
