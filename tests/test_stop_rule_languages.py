"""The stop rule in the brace languages (C, C++, Go, Java, JavaScript): the end of the cursor's block, the end
of a top-level block, each language's patterns and markers, comments and long strings; and the contract
(a decided cut never changes) with all of it switched on."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen_lsp.inference.rules.stop_rule import LINE_HEAD, LINE_TAIL, StopRule
from codegen_lsp.lsp_server.languages import LANGUAGES
from tests.test_stop_rule import assert_cut_is_final


def rule_for(language: str, line_prefix: str = "", **fields) -> StopRule:
    lang = LANGUAGES[language]
    return StopRule(lang.stop_patterns, line_prefix, braces=lang.name, markers=lang.markers, **fields)


def decided_as_soon_as_complete(rule: StopRule, text: str, kept: str) -> None:
    """`cut` says len(kept) on `text` and on everything after it, and final_cut agrees."""
    assert rule.cut(text) == len(kept), (rule.cut(text), text)
    assert rule.final_cut(text + "\nmore();\n}\n") == len(kept)
    assert text.startswith(kept)


# -- the end of the cursor's block -----------------------------------------------------------------------------


def test_go_a_brace_that_closes_the_function_the_cursor_is_in_ends_the_completion() -> None:
    rule = rule_for("go", "\t")
    text = "if x > 0 {\n\t\treturn x\n\t}\n\treturn -x\n}\n\nfunc other() {"
    decided_as_soon_as_complete(rule, text, "if x > 0 {\n\t\treturn x\n\t}\n\treturn -x\n")
    assert rule.cut("if x > 0 {\n\t\treturn x\n\t}\n\treturn -x\n") is None  # the next line may still close


def test_c_a_closer_after_code_on_its_line_cuts_right_before_it() -> None:
    rule = rule_for("c", "    ")
    assert rule.apply("x += 1;\n    return x; }\nint y;") == "x += 1;\n    return x; "


def test_java_braces_in_strings_chars_and_comments_do_not_count() -> None:
    rule = rule_for("java", "        ")
    text = "String s = \"}\";\n        char c = '}';\n        // }\n        /* } */ return s;\n    }\n"
    assert rule.apply(text) == text[: text.index("    }\n")]


def test_javascript_the_first_line_may_close_what_the_cursor_line_opened() -> None:
    rule = rule_for("javascript", "  const point = { x: 1, ")
    assert rule.apply("y: 2 };\n  draw(point);\n}\n") == "y: 2 };\n  draw(point);\n"
    rule = rule_for("javascript", "  items.forEach((item) => ")
    assert rule.apply("render(item));\n  done();\n}") == "render(item));\n  done();\n"


def test_cpp_a_multi_line_call_ends_where_its_closing_paren_would_leave_the_cursors_level() -> None:
    rule = rule_for("cpp", "      ")
    assert rule.apply("b,\n      c\n  );\n  next();") == "b,\n      c\n"


def test_the_blank_start_of_a_line_is_not_decided_until_its_first_character() -> None:
    rule = rule_for("go", "\t")
    assert rule.cut("x++\n") is None
    assert rule.cut("x++\n\t") is None
    assert rule.cut("x++\n}") == len("x++\n")
    assert rule.cut("x++\n\ty++") is None


# -- the end of a top-level block (the analogue of the second `def`) -----------------------------------------


@pytest.mark.parametrize(
    ("language", "text", "kept"),
    [
        ("c", "int add(int a, int b) {\n    return a + b;\n}\n\nint sub(int a, int b) {", None),
        ("cpp", "struct Point {\n    int x, y;\n};\nstruct Size {", None),
        ("go", "func add(a, b int) int {\n\treturn a + b\n}\nfunc sub(a, b int) int {", None),
        ("java", "class A {\n    int x;\n}\nclass B {", None),
        ("javascript", "function add(a, b) {\n  return a + b;\n}\nconsole.log(add(1, 2));", None),
        ("javascript", "describe('add', () => {\n  it('adds', () => {});\n});\ndescribe('sub', () => {", None),
    ],
)
def test_a_line_starting_with_a_closing_brace_in_column_0_ends_a_top_level_completion(
    language: str, text: str, kept: None
) -> None:
    rule = rule_for(language)
    first_close = text.index("\n}") + 1
    end = text.index("\n", first_close)
    assert rule.cut(text[:end]) is None  # `} else {` could still follow
    assert rule.cut(text[: end + 1]) == end
    assert rule.final_cut(text) == end


def test_an_else_on_the_closing_line_keeps_the_block_going() -> None:
    rule = rule_for("javascript")
    text = "if (ready) {\n  start();\n} else {\n  wait();\n}\nafter();"
    assert rule.apply(text) == "if (ready) {\n  start();\n} else {\n  wait();\n}"


# -- patterns and markers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["c", "cpp", "go", "java", "javascript"])
def test_brace_languages_stop_at_a_new_top_level_comment_eos_and_three_newlines(language: str) -> None:
    rule = rule_for(language)
    decided_as_soon_as_complete(rule, "x = 1;\n// next", "x = 1;\n")
    decided_as_soon_as_complete(rule, "x = 1;\n/* next", "x = 1;\n")
    decided_as_soon_as_complete(rule, "x = 1;<|endoftext|>", "x = 1;")
    decided_as_soon_as_complete(rule, "x = 1;\n\n\n", "x = 1;")
    assert rule.apply("x = 1;\n    // an indented comment stays\n    y = 2;") == (
        "x = 1;\n    // an indented comment stays\n    y = 2;"
    )


def test_go_stops_before_a_second_top_level_func_counting_the_one_typed() -> None:
    rule = rule_for("go", "func")
    text = " add(a, b int) int { return a + b }\nfunc sub(a, b int) int { return a - b }"
    assert rule.cut(text) == text.index("func")


def test_javascript_stops_before_a_second_console_log_or_function() -> None:
    rule = rule_for("javascript")
    text = "console.log(1);\nconsole.log(2);"
    assert rule.cut(text) == text.index("console.log(2)")
    text = "function a() { return 1; }\nfunction b() { return 2; }"
    assert rule.cut(text) == text.index("function b")


def test_python_markers_do_not_apply_to_other_languages() -> None:
    rule = rule_for("c")
    assert rule.apply("print(1);\nprint(2);\ndef;\ndef;") == "print(1);\nprint(2);\ndef;\ndef;"


# -- comments and long strings -----------------------------------------------------------------------------------


def test_a_block_comment_ends_right_after_its_closer() -> None:
    rule = StopRule(LANGUAGES["java"].stop_patterns, "     * ", close_after="*/", close_escapes=False)
    text = "Returns the sum.\n     */\n    int add(int a, int b) {"
    assert rule.cut(text) == text.index("*/") + 2


def test_a_go_raw_string_has_no_escapes() -> None:
    rule = StopRule((), "\tpath := `C:\\", close_after="`", close_escapes=False)
    assert rule.cut("Users\\`\n") == len("Users\\`")
    escaped = StopRule((), "\tmsg := `say \\", close_after="`", close_escapes=True)
    assert escaped.cut("`x`") == 3  # with escapes the first backtick would be escaped


def test_a_javascript_template_ends_at_its_backtick() -> None:
    rule = StopRule((), "  const html = `<p>", close_after="`")
    assert rule.apply("${name} says \\`hi\\`</p>`;\nrender(html);") == "${name} says \\`hi\\`</p>`"


# -- per-token work does not grow with the line ------------------------------------------------------------------


def test_a_long_line_prefix_is_kept_to_its_head_and_tail() -> None:
    prefix = "def" + "x" * 1_000_000 + " = ("
    rule = StopRule(line_prefix=prefix)
    assert rule.line_prefix == prefix[:LINE_HEAD] + prefix[-LINE_TAIL:]
    assert rule.apply(" area(r):\n    pass\ndef g():") == " area(r):\n    pass\n"  # the line's `def` counts
    assert StopRule(patterns=(r"(?<=\()1",), line_prefix=prefix).apply("1, 2)") == ""  # lookbehind sees the tail


# -- the contract, with the brace rule and markers ---------------------------------------------------------------

FRAGMENTS = [
    "\n", " ", "    ", "\t", "{", "}", "(", ")", "[", "]", ";", "//", "/*", "*/", "'", '"', "`", "${", "\\",
    "x", "func", "fu", "nc", "function", "console.log", "<|endoftext|>", "<|", "R\"(", ")\"", "} else {",
]  # fmt: skip
texts = st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join)
brace_rules = st.builds(
    lambda language, prefix, patterns: (
        rule_for(language, prefix)
        if patterns
        else StopRule((), prefix, braces=language, markers=LANGUAGES[language].markers)
    ),
    language=st.sampled_from(["c", "cpp", "go", "java", "javascript"]),
    prefix=st.sampled_from(["", "    ", "\t", "func", "fu", "  f(a, ", "  x = {", "function"]),
    patterns=st.booleans(),
)


@settings(max_examples=400, deadline=None)
@given(rule=brace_rules, text=texts)
def test_a_decided_cut_never_changes_as_text_is_appended(rule: StopRule, text: str) -> None:
    assert_cut_is_final(rule, text)


@settings(max_examples=300, deadline=None)
@given(rule=brace_rules, first=texts, second=texts)
def test_what_a_rule_remembers_between_calls_never_changes_an_answer(rule: StopRule, first: str, second: str) -> None:
    fresh = pickle.loads(pickle.dumps(rule))
    rule.cut(first)
    rule.cut(first + second)  # the worker's way: the text grows
    assert rule.cut(second) == fresh.cut(second)  # any other text: as if nothing was remembered
    assert rule.final_cut(first + second) == pickle.loads(pickle.dumps(rule)).final_cut(first + second)


def test_the_remembered_walk_does_not_travel_with_the_rule() -> None:
    rule = rule_for("go", "\t")
    rule.cut("x := 1\n\ty := 2\n\t")
    assert "_walked" in rule.__dict__
    copy = pickle.loads(pickle.dumps(rule))
    assert copy == rule and "_walked" not in copy.__dict__
