"""The document store: LSP lines, positions in three encodings, incremental edits (against a reference)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen_lsp.lsp_server.documents import (
    Change,
    Document,
    DocumentStore,
    column_to_units,
    line_starts,
    units_to_column,
)

# Characters that matter: line breaks LSP knows, ones it does not (str.splitlines does), non-BMP, multi-byte.
ALPHABET = [
    "a",
    "b",
    " ",
    "\t",
    "\n",
    "\r",
    "\r\n",
    "\f",
    "\x0b",
    "\x1c",
    "\x85",
    "\u2028",
    "é",
    "€",
    "😀",
    "𝔘",
]
text_strategy = st.lists(st.sampled_from(ALPHABET), max_size=30).map("".join)


def reference_lines(text: str) -> list[str]:
    """LSP lines without their breaks, the slow obvious way."""
    return re.split(r"\r\n|\r|\n", text)


def units(char: str, encoding: str) -> int:
    return {"utf-8": len(char.encode("utf-8")), "utf-16": 2 if ord(char) > 0xFFFF else 1, "utf-32": 1}[encoding]


def reference_offset(text: str, line: int, character: int, encoding: str) -> int:
    lines = reference_lines(text)
    if line >= len(lines):
        return len(text)
    starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]
    offset = starts[line]
    used = 0
    for char in lines[line]:
        if used + units(char, encoding) > character:
            break
        used += units(char, encoding)
        offset += 1
    return offset


@pytest.mark.parametrize(
    ("text", "starts"),
    [
        ("", [0]),
        ("a\nb", [0, 2]),
        ("a\r\nb\rc\n", [0, 3, 5, 7]),
        ("a\fb\u2028c\x85d", [0]),  # not LSP line breaks
        ("\r\r\n\n", [0, 1, 3, 4]),
    ],
)
def test_line_starts(text: str, starts: list[int]) -> None:
    assert line_starts(text) == starts


def test_form_feed_does_not_start_a_line() -> None:
    # pygls' TextDocument splits here (str.splitlines), so positions below a ^L were a line off.
    doc = Document("file:///a.py", "x = 1\n\f\ny = 2\n")
    assert doc.line_count == 4
    assert doc.line(1) == "\f"
    assert doc.text[doc.offset_at(2, 0) :].startswith("y = 2")


def test_positions_in_each_encoding() -> None:
    doc = Document("file:///a.py", 'x="😋"\nnext')
    quote = doc.text.rindex('"')
    assert doc.offset_at(0, 7, "utf-8") == quote
    assert doc.offset_at(0, 5, "utf-16") == quote
    assert doc.offset_at(0, 4, "utf-32") == quote
    assert doc.position_at(quote, "utf-8") == (0, 7)
    assert doc.position_at(quote, "utf-16") == (0, 5)
    # Inside the emoji: round down to its start.
    assert doc.offset_at(0, 4, "utf-16") == quote - 1
    assert doc.offset_at(0, 5, "utf-8") == quote - 1


def test_past_the_end() -> None:
    doc = Document("file:///a.py", "ab\ncd")
    assert doc.offset_at(0, 99) == 2  # the end of the line, not of the text
    assert doc.offset_at(1, 99) == 5
    assert doc.offset_at(7, 0) == 5
    assert doc.offset_at(-1, 3) == 0
    assert doc.position_at(99) == (1, 2)


def test_store_ignores_unknown_documents() -> None:
    store = DocumentStore()
    assert not store.change("file:///nope.py", [Change("x")], 2, "utf-16")
    store.open("file:///a.py", "abc", "python", 1)
    assert store.change("file:///a.py", [Change("X", (0, 1, 0, 2))], 2, "utf-16")
    assert store.get("file:///a.py").text == "aXc"
    assert store.close("file:///a.py") and not store.close("file:///a.py")


@given(line=text_strategy, data=st.data())
@settings(max_examples=300, deadline=None)
def test_unit_conversions_match_reference(line: str, data: st.DataObject) -> None:
    line = line.replace("\r", "").replace("\n", "")
    encoding = data.draw(st.sampled_from(["utf-8", "utf-16", "utf-32"]))
    total = sum(units(c, encoding) for c in line)
    n = data.draw(st.integers(0, total + 3))
    assert units_to_column(line, n, encoding) == reference_offset(line, 0, n, encoding)
    column = data.draw(st.integers(0, len(line)))
    assert column_to_units(line, column, encoding) == sum(units(c, encoding) for c in line[:column])


@given(
    text=text_strategy,
    edits=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40), text_strategy), max_size=8),
)
@settings(max_examples=300, deadline=None)
def test_replace_keeps_line_index(text: str, edits: list[tuple[int, int, str]]) -> None:
    doc = Document("file:///a.py", text)
    for a, b, new in edits:
        a, b = sorted((min(a, len(text)), min(b, len(text))))
        text = text[:a] + new + text[b:]
        doc.replace(a, b, new)
        assert doc.text == text
        assert doc._starts == line_starts(text)
        assert [doc.line(i) for i in range(doc.line_count)] == reference_lines(text)


@given(text=text_strategy, data=st.data())
@settings(max_examples=300, deadline=None)
def test_apply_change_by_position(text: str, data: st.DataObject) -> None:
    encoding = data.draw(st.sampled_from(["utf-8", "utf-16", "utf-32"]))
    doc = Document("file:///a.py", text)
    for _ in range(data.draw(st.integers(1, 5))):
        a, b = sorted(data.draw(st.tuples(st.integers(0, len(text)), st.integers(0, len(text)))))
        a, b = (x - 1 if text[x - 1 : x + 1] == "\r\n" else x for x in (a, b))  # no position inside "\r\n"
        new = data.draw(text_strategy)
        (l1, c1), (l2, c2) = doc.position_at(a, encoding), doc.position_at(b, encoding)
        assert reference_offset(text, l1, c1, encoding) == a
        doc.apply(Change(new, (l1, c1, l2, c2)), encoding)
        text = text[:a] + new + text[b:]
        assert doc.text == text


def test_the_document_knows_whether_its_last_edit_only_deleted() -> None:
    document = Document("file:///a.py", "abc\ndef\n")
    document.apply(Change("", (0, 1, 0, 2)))
    assert document.text == "ac\ndef\n" and document.last_edit_deleted
    document.apply(Change("x", (0, 1, 0, 1)))
    assert not document.last_edit_deleted
    document.apply(Change("y", (0, 0, 0, 1)))  # a replacement is not a deletion
    assert not document.last_edit_deleted
    document.apply(Change("", (0, 0, 0, 0)))  # an empty change deletes nothing
    assert not document.last_edit_deleted
