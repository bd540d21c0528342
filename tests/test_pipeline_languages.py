"""The pipeline in C, C++, Go, Java and JavaScript documents: decide, the stop rule the cursor implies, and what
the editor shows for what the model wrote (`|` marks the cursor)."""

from __future__ import annotations

import pytest

from codegen_lsp.inference.rules.stop_rule import StopRule
from codegen_lsp.lsp_server.languages import LANGUAGES
from codegen_lsp.lsp_server.pipeline import TypedThroughCache
from codegen_lsp.lsp_server.pipeline.context import build_context, stop_rule_for
from codegen_lsp.lsp_server.pipeline.decide import Mode, choose_mode, decide
from codegen_lsp.lsp_server.pipeline.postprocess import postprocess


def context(marked: str, language: str):
    offset = marked.index("|")
    text = marked[:offset] + marked[offset + 1 :]
    ctx = build_context(text, offset, 10_000, language=LANGUAGES[language])
    line_end = text.find("\n", offset)
    line = text[text.rfind("\n", 0, offset) + 1 : len(text) if line_end < 0 else line_end]
    return ctx, choose_mode(line, len(ctx.line_prefix))


def rule(marked: str, language: str) -> StopRule:
    ctx, mode = context(marked, language)
    return stop_rule_for(ctx, LANGUAGES[language].stop_patterns, mode)


def complete(marked: str, raw: str, language: str) -> str:
    """What the editor shows when the model answers `raw` at the '|' in `marked`."""
    ctx, mode = context(marked, language)
    return postprocess(raw, ctx, stop_rule_for(ctx, LANGUAGES[language].stop_patterns, mode))


# -- decide ----------------------------------------------------------------------------------------------------


def test_no_automatic_completion_mid_identifier_dollar_signs_included_where_they_are_identifiers() -> None:
    assert decide("const el = |$button".replace("|", ""), 11, False, "$") is None  # JavaScript
    assert decide("const el = $button", 11, True, "$") is Mode.SINGLE_LINE  # asked for: honoured
    assert decide("x := $", 5, False, "") is Mode.SINGLE_LINE  # Go: '$' is not part of a name
    assert decide("    int count = total", 16, False, "$") is None
    assert decide("    int count = ", 16, False, "$") is Mode.MULTI_LINE


def test_single_line_when_code_follows_the_cursor_in_every_language() -> None:
    for language in ["c", "cpp", "go", "java", "javascript"]:
        assert rule("f(|);\n", language).single_line
        assert not rule("f();\n|\n", language).single_line


# -- the stop rule the cursor implies ------------------------------------------------------------------------------


def test_code_in_a_brace_language_ends_with_its_block_and_uses_its_patterns() -> None:
    go = rule("func f() {\n\t|\n}\n", "go")
    assert go == StopRule(LANGUAGES["go"].stop_patterns, "\t", braces="go", markers=("func",))
    js = rule("function f() {\n  |\n}\n", "javascript")
    assert js.braces == "javascript" and js.markers == ("console.log", "function") and js.min_indent is None


@pytest.mark.parametrize(
    ("marked", "language", "closer", "escapes"),
    [
        ("/**\n * Returns the |\n */\nint f();", "java", "*/", False),
        ("int x; /* note: |", "c", "*/", False),
        ("const s = `Hello, ${name}|", "javascript", "`", True),
        ("path := `C:\\|", "go", "`", False),
        ('String html = """\n    <p>|', "java", '"""', True),
        ('auto re = R"x(a|', "cpp", ')x"', False),
    ],
)
def test_a_block_comment_or_long_string_ends_at_its_closer(marked, language, closer, escapes) -> None:
    stop = rule(marked, language)
    assert (stop.close_after, stop.close_escapes) == (closer, escapes)


@pytest.mark.parametrize("language", ["c", "cpp", "go", "java", "javascript"])
def test_a_line_comment_ends_at_the_end_of_its_line(language: str) -> None:
    assert rule("int x;\n// compute the |\n", language).single_line


# -- what the editor shows -------------------------------------------------------------------------------------------


def test_go_a_completion_ends_with_the_function_it_is_in() -> None:
    marked = "func Abs(x int) int {\n\t|\n}\n"
    raw = "if x < 0 {\n\t\treturn -x\n\t}\n\treturn x\n}\n\nfunc Max(a, b int) int {"
    assert complete(marked, raw, "go") == "if x < 0 {\n\t\treturn -x\n\t}\n\treturn x"


def test_go_at_the_top_level_a_completion_is_one_function() -> None:
    marked = "package m\n\n|"
    raw = "func Sub(a, b int) int {\n\treturn a - b\n}\n\nfunc Mul(a, b int) int {\n\treturn a * b\n}\n"
    assert complete(marked, raw, "go") == "func Sub(a, b int) int {\n\treturn a - b\n}"


def test_c_a_closing_brace_of_the_enclosing_block_is_not_repeated() -> None:
    assert complete("int main(void) {\n    |\n}\n", "return 0;\n}\n", "c") == "return 0;"


def test_java_a_javadoc_completion_ends_after_its_closer() -> None:
    marked = "    /**\n     * Greets |\n    public String greet() {"
    raw = "the person.\n     */\n    public String greet() {\n        return name;"
    assert complete(marked, raw, "java") == "the person.\n     */"


def test_javascript_closing_brackets_and_quotes_after_the_cursor_are_not_duplicated() -> None:
    assert complete("console.log(|);", "total(items));", "javascript") == "total(items)"
    assert complete('const s = "Hel|";', 'lo, world";', "javascript") == "lo, world"
    assert complete("const s = `Hi ${|}`;", "name}`;", "javascript") == "name"
    assert complete("items.map((item) => |);", "item.price);\nfoo();", "javascript") == "item.price"


def test_cpp_char_literals_and_raw_strings_hold_no_brackets() -> None:
    assert complete("    f(|);", "')', R\"(a ) b)\");", "cpp") == "')', R\"(a ) b)\""


def test_java_lines_that_repeat_what_follows_the_cursor_are_dropped() -> None:
    marked = "    String greet() {\n        |\n        return name;\n    }\n"
    raw = 'String s = "Hi";\n        return name;\n    }'
    assert complete(marked, raw, "java") == 'String s = "Hi";'


def test_c_a_new_top_level_comment_ends_the_completion() -> None:
    marked = "int x = 1;\n|"
    assert complete(marked, "int y = 2;\n// Next: z\nint z = 3;\n", "c") == "int y = 2;"


def test_typed_through_works_the_same_in_a_go_document() -> None:
    cache = TypedThroughCache()
    before, _ = context("func f() int {\n\treturn |\n}\n", "go")
    cache.remember("file:///a.go", before, ["x + 1"])
    after, _ = context("func f() int {\n\treturn x |\n}\n", "go")
    assert cache.lookup("file:///a.go", after) == ["+ 1"]
