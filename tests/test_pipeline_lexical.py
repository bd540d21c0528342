"""The lexer the pipeline and the stop rule share: code, comment or string at a point, in each language, and
what a completion closes. The samples are real code; `‸` marks the point asked about."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codegen_lsp.inference.rules.syntax import SYNTAXES, StringForm
from codegen_lsp.lsp_server.pipeline.lexical import CODE, Lex, LexState, first_unmatched_closer, scan

PY, C, CPP, GO, JAVA, JS = (SYNTAXES[name] for name in ("python", "c", "cpp", "go", "java", "javascript"))
CURSOR = "‸"


def state_at(sample: str, syntax) -> LexState:
    return scan(sample[: sample.index(CURSOR)], syntax)


PYTHON_CASES = [
    ("x = 1\n‸", Lex.CODE, None),
    ("x = 1  # the answer‸", Lex.COMMENT, None),
    ("x = 1  # the answer\ny = ‸", Lex.CODE, None),
    ("name = 'Ada‸", Lex.STRING, "'"),
    ('name = "Ada‸', Lex.STRING, '"'),
    ('name = "Ada" + ‸', Lex.CODE, None),
    ("name = 'it\\'s‸", Lex.STRING, "'"),
    ("name = 'unterminated\nx = ‸", Lex.CODE, None),
    ("s = 'a \\\ncontinued‸", Lex.STRING, "'"),
    ('def f():\n    """Return the‸', Lex.LONG_STRING, '"""'),
    ("def f():\n    '''Return\n\n    more‸", Lex.LONG_STRING, "'''"),
    ('def f():\n    """Done."""\n    return ‸', Lex.CODE, None),
    ('x = """# not a comment‸', Lex.LONG_STRING, '"""'),
    ("# it's a comment, not a string‸", Lex.COMMENT, None),
    ('s = "a # not a comment‸', Lex.STRING, '"'),
    ('s = """a "quoted" word‸', Lex.LONG_STRING, '"""'),
    ('s = """ends with two quotes ""‸', Lex.LONG_STRING, '"""'),
    ('s = """ends with an escaped quote \\"""‸', Lex.LONG_STRING, '"""'),
    ("s = r'raw \\' still open‸", Lex.STRING, "'"),
    ("s = ''‸", Lex.CODE, None),
    ("s = '''‸", Lex.LONG_STRING, "'''"),
    ("s = 'backslash at the end \\‸", Lex.STRING, "'"),
    ("x = a // b  # floor division, not a comment opener‸", Lex.COMMENT, None),
    ("x = a // b‸", Lex.CODE, None),
]

C_SAMPLE = r"""#include <stdio.h>
/* A block comment with "quotes", 'q' and // inside‸ */
static const char *names[] = {"Ada", "it's", "a \"quoted\" word"};‸
int main(void) {
    char c = '\'';‸ char d = '"';‸
    printf("%s /* not a comment */ %c\n‸", names[0], c);
    // line comment with "a quote‸
    int x = 1; /** doc‸
     * more */ int y = x / 2;‸
    puts("unterminated‸
    return 0;‸
}
"""
C_EXPECTED = [
    (Lex.BLOCK_COMMENT, "*/"), (Lex.CODE, None), (Lex.CODE, None), (Lex.CODE, None), (Lex.STRING, '"'),
    (Lex.COMMENT, None), (Lex.BLOCK_COMMENT, "*/"), (Lex.CODE, None), (Lex.STRING, '"'), (Lex.CODE, None),
]  # fmt: skip

CPP_SAMPLE = r"""#include <string>
// A C++ sample: raw strings, digit separators, char literals.
auto pattern = R"re(a "quoted" )" and \d+‸)re";‸
auto html = u8R"(<p class="x">‸
</p>)";‸
long big = 1'000'000;‸ char q = 'q';‸ auto wide = L"wide‸";
std::string s = "/* not a comment */";‸
template <typename T> T twice(T x) { return x * 2; }  /* block
   comment ‸*/
"""
CPP_EXPECTED = [
    (Lex.LONG_STRING, ')re"'), (Lex.CODE, None), (Lex.LONG_STRING, ')"'), (Lex.CODE, None), (Lex.CODE, None),
    (Lex.CODE, None), (Lex.STRING, '"'), (Lex.CODE, None), (Lex.BLOCK_COMMENT, "*/"),
]  # fmt: skip

GO_SAMPLE = r"""package main

import "fmt"‸

/* Package comment with a `backtick‸ */
func main() {
	raw := `C:\path\‸
second "line" of a raw string`‸
	r := '\''‸; q := '"'‸
	s := "tab\t\"quoted\" ‸"
	// fmt.Println(`not a raw string‸
	fmt.Println(raw, r, q, s)‸
}
"""
GO_EXPECTED = [
    (Lex.CODE, None), (Lex.BLOCK_COMMENT, "*/"), (Lex.LONG_STRING, "`"), (Lex.CODE, None), (Lex.CODE, None),
    (Lex.CODE, None), (Lex.STRING, '"'), (Lex.COMMENT, None), (Lex.CODE, None),
]  # fmt: skip

JAVA_SAMPLE = r"""package demo;

/**
 * Javadoc with {@code "quotes"} and an <em>apostrophe</em>: it's‸
 */
public class Greeter {‸
    private static final String HTML = ""\"
        <p class="greeting">Hello, "world"‸</p>
        ""\";‸
    private final char quote = '\'';‸
    String greet(String name) { return "Hello, " + name + "!‸"; }
    // TODO: /* not a block comment‸
    int next() { return 1; }‸
}
""".replace('""\\"', '"""')
JAVA_EXPECTED = [
    (Lex.BLOCK_COMMENT, "*/"), (Lex.CODE, None), (Lex.LONG_STRING, '"""'), (Lex.CODE, None), (Lex.CODE, None),
    (Lex.STRING, '"'), (Lex.COMMENT, None), (Lex.CODE, None),
]  # fmt: skip

JS_SAMPLE = r"""// @ts-check
const greeting = `Hello, ${name}‸!`;‸
const nested = `outer ${items.map((i) => `inner ${i}‸`).join(", ")‸} end`;‸
const obj = { key: "value", 'other': 'it\'s‸' };
const tpl = `line one
line two with a } brace and a ${ {a: 1}.a ‸} and // no comment‸`;
/** JSDoc: @param {string} x‸ */
function f(x) { return x / 2; }‸
"""
JS_EXPECTED = [
    (Lex.LONG_STRING, "`"), (Lex.CODE, None), (Lex.LONG_STRING, "`"), (Lex.CODE, None), (Lex.CODE, None),
    (Lex.STRING, "'"), (Lex.CODE, None), (Lex.LONG_STRING, "`"), (Lex.BLOCK_COMMENT, "*/"), (Lex.CODE, None),
]  # fmt: skip


def cursors(sample: str) -> list[int]:
    """Where each `‸` is, in the sample with the markers removed."""
    positions, offset = [], 0
    for index, char in enumerate(sample):
        if char == CURSOR:
            positions.append(index - offset)
            offset += 1
    return positions


@pytest.mark.parametrize(("text", "kind", "quote"), PYTHON_CASES)
def test_python_scan_tells_what_the_end_of_the_text_is_in(text: str, kind: Lex, quote: str | None) -> None:
    state = state_at(text, PY)
    assert (state.kind, state.quote) == (kind, quote)


@pytest.mark.parametrize(
    ("syntax", "sample", "expected"),
    [
        (C, C_SAMPLE, C_EXPECTED),
        (CPP, CPP_SAMPLE, CPP_EXPECTED),
        (GO, GO_SAMPLE, GO_EXPECTED),
        (JAVA, JAVA_SAMPLE, JAVA_EXPECTED),
        (JS, JS_SAMPLE, JS_EXPECTED),
    ],
    ids=["c", "cpp", "go", "java", "javascript"],
)
def test_each_language_sample_is_in_the_expected_state_at_each_marker(syntax, sample, expected) -> None:
    text = sample.replace(CURSOR, "")
    seen = [(scan(text[:at], syntax).kind, scan(text[:at], syntax).quote) for at in cursors(sample)]
    assert seen == expected


def test_scan_records_where_the_open_string_or_comment_started() -> None:
    text = 'def f():\n    """Return'
    assert scan(text, PY).opened_at == text.index('"""')
    text = "int x; /** Returns"
    assert scan(text, JAVA).opened_at == text.index("/**")


def test_a_template_literal_remembers_the_interpolations_it_is_in() -> None:
    assert scan("`a ${ f({", JS).templates == (1,)
    assert scan("`a ${ f({}) ", JS).templates == (0,)
    assert scan("`a ${ `b ${ x", JS).templates == (0, 0)
    assert scan("`a ${ x }", JS).kind is Lex.LONG_STRING


def test_a_cpp_digit_separator_is_not_a_character_literal_but_u8_prefix_is() -> None:
    assert scan("int n = 0x7FFF'FFFF; int m = ", CPP).kind is Lex.CODE
    assert scan("char c = u8'", CPP).kind is Lex.STRING
    assert scan("int n = 1'000; int m = ", C).kind is Lex.STRING  # C has no digit separators: a char literal


lines = st.lists(
    st.lists(
        st.sampled_from(["x", " ", "#", "//", "/*", "*/", "'", '"', "'''", '"""', "`", "${", "}", "\\", "(", ")"]),
        max_size=8,
    ).map("".join),
    max_size=8,
)


@given(head=lines, tail=lines, syntax=st.sampled_from([PY, C, CPP, GO, JAVA, JS]))
def test_scanning_in_pieces_gives_the_same_state(head: list[str], tail: list[str], syntax) -> None:
    first = "".join(line + "\n" for line in head)
    second = "\n".join(tail)
    whole, pieces = scan(first + second, syntax), scan(second, syntax, scan(first, syntax))
    assert (whole.kind, whole.quote, whole.templates) == (pieces.kind, pieces.quote, pieces.templates)


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
        ('Return the area."""', LexState(Lex.LONG_STRING, '"""'), 16),
        ('"inner") + ("x")', CODE, 7),
    ],
)
def test_python_first_unmatched_closer_finds_what_closes_text_before_the_completion(
    completion: str, state: LexState, expected: int | None
) -> None:
    assert first_unmatched_closer(completion, PY, state) == expected


@pytest.mark.parametrize(
    ("syntax", "completion", "state", "expected"),
    [
        (C, "a, b);", CODE, 4),
        (C, 'printf("(%d", x));', CODE, 16),  # the '(' in the string does not count
        (C, "x; /* ) */ y)", CODE, 12),
        (C, "x; // )\ny)", CODE, 9),
        (C, "c = ')')", CODE, 7),
        (C, " the end */", LexState(Lex.BLOCK_COMMENT, "*/"), 9),  # closes the comment the cursor is in
        (GO, "`raw )` + f(x))", CODE, 14),
        (GO, "C:\\path\\` + x", LexState(Lex.LONG_STRING, "`", form=StringForm("`", "`", True, False)), 8),
        (JAVA, 'text"""; }', LexState(Lex.LONG_STRING, '"""'), 4),
        (JS, "`a ${f(1)} b`)", CODE, 13),
        (JS, "x + 1}`", LexState(templates=(0,)), 5),  # closes the `${` the cursor is in
        (CPP, 'R"(a ) b)" + x)', CODE, 14),
    ],
)
def test_first_unmatched_closer_in_each_language(syntax, completion, state, expected) -> None:
    assert first_unmatched_closer(completion, syntax, state) == expected
