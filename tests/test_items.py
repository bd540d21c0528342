"""items.py: completion texts as LSP items."""

from __future__ import annotations

from lsprotocol import types

from codegen_lsp.lsp_server.items import completion_edit, completion_items, inline_items


def test_completion_edit_starts_at_the_word() -> None:
    edit = completion_edit("    ret", "urn a - b\n    # done")
    assert edit.word == "ret" and edit.new_text == "return a - b\n    # done" and edit.label == "return a - b"
    assert completion_edit("x = ", "1").word == ""
    assert completion_edit("    éa", "b").word == "éa"  # identifiers are Unicode
    assert completion_edit("def f():", "\n    pass").label == "pass"
    assert completion_edit("    name", "\n    pass").label == "name ⏎ pass"


def test_completion_edit_takes_the_language_identifier_characters() -> None:
    """`$` continues an identifier in JavaScript and Java, as `decide` and post-processing read it."""
    edit = completion_edit("  const $el", "ement = find()", identifier_extra="$")
    assert edit.word == "$el" and edit.new_text == "$element = find()"
    assert completion_edit("  const $el", "ement").word == "el"  # Python: `$` is not part of a name
    item = completion_items(["ement"], "  const $el", (0, 11), "utf-16", None, identifier_extra="$").items[0]
    assert item.text_edit.range.start.character == 8 and item.text_edit.new_text == "$element"


def test_inline_items_insert_at_the_cursor() -> None:
    result = inline_items(["a", "b"], (3, 7))
    assert [item.insert_text for item in result.items] == ["a", "b"]
    at = types.Position(line=3, character=7)
    assert all(item.range == types.Range(start=at, end=at) for item in result.items)


def test_completion_items_replace_the_word_in_the_session_units() -> None:
    # "é" is 2 utf-8 bytes and 1 utf-16 unit: the edit's start moves back by the word's length in those units.
    utf8 = completion_items(["x = 1"], "    éa", (0, 7), "utf-8", markdown_language="python").items[0]
    utf16 = completion_items(["x = 1"], "    éa", (0, 6), "utf-16", markdown_language=None).items[0]
    assert utf8.text_edit.range.start.character == 4 and utf16.text_edit.range.start.character == 4
    assert utf8.text_edit.new_text == "éax = 1" and utf8.preselect
    assert utf8.documentation.value == "```python\néax = 1\n```" and utf16.documentation == "éax = 1"
