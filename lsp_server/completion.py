"""Glue shared by the server and `codegen-lsp complete`: (document, cursor, settings) -> request -> items.

Pure functions, so the two paths cannot drift apart: the CLI's `--json` output and the server's answer for the
same document, position and settings are the same text.

What an item replaces: post-processing makes each item the text to INSERT at the cursor (the rest of the line
stays; `remove_suffix_duplicate` already dropped what it would repeat). So inline items carry an empty range
at the cursor. The `textDocument/completion` fallback is different only in how clients filter: they match
items against the word before the cursor, so its edit starts at that word and re-inserts it
(`completion_edit`).
"""

from __future__ import annotations

from dataclasses import dataclass

from codegen_lsp.inference.protocol import Candidate, CompletionRequest, CompletionResult, StopReason
from codegen_lsp.inference.stop_rule import StopRule

from .pipeline import CompletionContext, Mode, build_context, decide, postprocess, stop_rule_for
from .pipeline.decide import is_identifier_char
from .settings import Settings

__all__ = [
    "CHARS_PER_TOKEN",
    "CompletionEdit",
    "Prepared",
    "completion_edit",
    "finish",
    "is_supported_language",
    "make_request",
    "max_prompt_chars",
    "prepare",
]

# The prompt the server cuts is about contextTokens * 6 characters: code averages 3-4 characters a token, so
# the worker's token window (the exact budget) always has enough text to fill it, while a 10 MB document
# never sends more than a few kB per keystroke.
CHARS_PER_TOKEN = 6

# CodeGen-mono was trained on Python only. Other documents are answered with no items (never an error).
PYTHON_LANGUAGE_IDS = frozenset({"python", "python3", "py", "python-ts"})


def is_supported_language(language_id: str | None) -> bool:
    return (language_id or "").strip().lower() in PYTHON_LANGUAGE_IDS


def max_prompt_chars(settings: Settings) -> int:
    return settings.generation.context_tokens * CHARS_PER_TOKEN


@dataclass(frozen=True)
class Prepared:
    """One completion, decided and cut out of the document: what the worker is asked and how to finish."""

    ctx: CompletionContext
    mode: Mode
    rule: StopRule


def prepare(text: str, offset: int, settings: Settings, *, invoked: bool) -> Prepared | None:
    """Steps 1-2 (decide, context) and the stop rule; None: no completion here."""
    offset = min(max(offset, 0), len(text))
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line_text = text[line_start : len(text) if line_end < 0 else line_end].removesuffix("\r")
    mode = decide(line_text, offset - line_start, invoked)
    if mode is None:
        return None
    ctx = build_context(text, offset, max_prompt_chars(settings))
    return Prepared(ctx, mode, stop_rule_for(ctx, settings.generation.truncate_before_pattern, mode))


def make_request(
    prepared: Prepared, settings: Settings, *, request_id: int, document: str
) -> CompletionRequest:
    options = settings.generation_options(prepared.rule)
    return CompletionRequest(request_id, document, prepared.ctx.prompt, options)


def complete_lines(candidate: Candidate) -> str:
    """A candidate the token limit cut mid-line keeps its complete lines only (when it has any): a dangling
    `if self` after good lines is worse than no last line."""
    text = candidate.text
    if candidate.stop_reason not in (StopReason.MAX_TOKENS, StopReason.CONTEXT_FULL) or text.endswith("\n"):
        return text
    first_line = len(text) - len(text.lstrip("\n"))
    last_newline = text.rfind("\n")
    return text[:last_newline] if last_newline > first_line else text


def finish(result: CompletionResult, prepared: Prepared) -> list[str]:
    """Step 4: each candidate post-processed; empty and duplicate items dropped, the engine's order kept."""
    items: list[str] = []
    for candidate in result.candidates:
        text = postprocess(complete_lines(candidate), prepared.ctx, prepared.rule)
        if text and text not in items:
            items.append(text)
    return items


@dataclass(frozen=True)
class CompletionEdit:
    """A `textDocument/completion` item: replace the `word` before the cursor with `new_text`."""

    word: str  # identifier characters right before the cursor (the client filters on them)
    new_text: str  # word + the completion
    label: str  # the first line of new_text: what the menu shows and the client matches


def completion_edit(line_prefix: str, item: str) -> CompletionEdit:
    """Clients (eglot, Neovim's omnifunc and completion) keep only items whose filterText or label starts
    with the word before the cursor, and replace that word with the item. An item that inserted only the
    continuation ("urn x" after "ret") would be filtered out, so the edit starts at the word and re-inserts it
    ("return x")."""
    start = len(line_prefix)
    while start > 0 and is_identifier_char(line_prefix[start - 1]):
        start -= 1
    word = line_prefix[start:]
    new_text = word + item
    label = new_text.split("\n", 1)[0].rstrip()
    if label == word:  # the completion starts on the next line: show that line, after the word
        following = item.strip().split("\n", 1)[0]
        label = f"{word} ⏎ {following}" if word else following
    return CompletionEdit(word, new_text, label)
