"""From completion texts to LSP items: inline completion items and the `textDocument/completion` fallback.

What an item replaces: post-processing makes each item the text to INSERT at the cursor (the rest of the line
stays; `remove_suffix_duplicate` already dropped what it would repeat). So inline items carry an empty range
at the cursor. The `textDocument/completion` fallback differs only in how clients filter: they match items
against the word before the cursor, so its edit starts at that word and re-inserts it (`completion_edit`).
"""

from __future__ import annotations

from dataclasses import dataclass

from lsprotocol import types

from codegen_lsp.lsp_server.documents import column_to_units
from codegen_lsp.lsp_server.pipeline.decide import is_identifier_char

__all__ = ["CompletionEdit", "completion_edit", "completion_items", "inline_items"]


def inline_items(items: list[str], cursor: tuple[int, int]) -> types.InlineCompletionList:
    at = types.Position(line=cursor[0], character=cursor[1])
    empty = types.Range(start=at, end=at)
    return types.InlineCompletionList(
        items=[types.InlineCompletionItem(insert_text=text, range=empty) for text in items]
    )


@dataclass(frozen=True)
class CompletionEdit:
    """A `textDocument/completion` item: replace the `word` before the cursor with `new_text`."""

    word: str  # identifier characters right before the cursor (the client filters on them)
    new_text: str  # word + the completion
    label: str  # the first line of new_text: what the menu shows and the client matches


def completion_edit(line_prefix: str, item: str, identifier_extra: str = "") -> CompletionEdit:
    """Clients (eglot, Neovim's omnifunc and completion) keep only items whose filterText or label starts
    with the word before the cursor, and replace that word with the item. An item that inserted only the
    continuation ("urn x" after "ret") would be filtered out, so the edit starts at the word and re-inserts it
    ("return x"). `identifier_extra`: the language's other identifier characters (`$` in JavaScript and Java),
    as `decide` and post-processing read them."""
    start = len(line_prefix)
    while start > 0 and is_identifier_char(line_prefix[start - 1], identifier_extra):
        start -= 1
    word = line_prefix[start:]
    new_text = word + item
    label = new_text.split("\n", 1)[0].rstrip()
    if label == word:  # the completion starts on the next line: show that line, after the word
        following = item.strip().split("\n", 1)[0]
        label = f"{word} ⏎ {following}" if word else following
    return CompletionEdit(word, new_text, label)


def completion_items(
    items: list[str],
    line_prefix: str,
    cursor: tuple[int, int],
    encoding: str,
    markdown_language: str | None,
    identifier_extra: str = "",
) -> types.CompletionList:
    """Incomplete: the items depend on every character typed, so the client must ask again, not filter.
    `markdown_language`: the documentation is a fenced markdown block in this language (None: plain text, for
    clients that do not read markdown). `identifier_extra`: as for `completion_edit`."""
    end = types.Position(line=cursor[0], character=cursor[1])
    result = []
    for index, text in enumerate(items):
        edit = completion_edit(line_prefix, text, identifier_extra)
        start = types.Position(
            line=cursor[0], character=cursor[1] - column_to_units(edit.word, len(edit.word), encoding)
        )
        documentation: str | types.MarkupContent = edit.new_text  # the whole completion: the label is one line
        if markdown_language is not None:
            fenced = f"```{markdown_language}\n{edit.new_text}\n```"
            documentation = types.MarkupContent(kind=types.MarkupKind.Markdown, value=fenced)
        result.append(
            types.CompletionItem(
                label=edit.label,
                kind=types.CompletionItemKind.Text,
                detail="codegen-lsp",
                documentation=documentation,
                sort_text=f"{index:04d}",
                filter_text=edit.new_text.split("\n", 1)[0] or edit.word,
                preselect=index == 0,
                insert_text_format=types.InsertTextFormat.PlainText,
                text_edit=types.TextEdit(range=types.Range(start=start, end=end), new_text=edit.new_text),
            )
        )
    return types.CompletionList(is_incomplete=True, items=result)
