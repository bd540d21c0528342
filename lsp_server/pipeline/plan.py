"""Steps 1-2 together: may we complete here, and if so the prompt, the mode and the stop rule (a `Plan`).

Pure functions shared by the server and `codegen-lsp complete`, so the two cannot drift apart: the CLI's
`--json` output and the server's answer for the same document, position and settings are the same text.
"""

from __future__ import annotations

from dataclasses import dataclass

from codegen_lsp.inference.protocol import CompletionRequest
from codegen_lsp.inference.rules.stop_rule import StopRule
from codegen_lsp.lsp_server.languages import (
    LANGUAGES,
    Language,
    canonical_language_id,
    enabled_language_ids,
    language_for_id,
)
from codegen_lsp.lsp_server.pipeline.context import CompletionContext, build_context, stop_rule_for
from codegen_lsp.lsp_server.pipeline.decide import Mode, decide
from codegen_lsp.lsp_server.settings import Settings

__all__ = [
    "CHARS_PER_TOKEN",
    "Plan",
    "completed_language",
    "engine_request",
    "max_prompt_chars",
    "plan",
    "stop_patterns",
]

# The prompt the server cuts is about contextTokens * 6 characters: code averages 3-4 characters a token, so
# the worker's token window (the exact budget) always has enough text to fill it, while a 10 MB document
# never sends more than a few kB per keystroke.
CHARS_PER_TOKEN = 6


def completed_language(language_id: str | None, settings: Settings) -> Language | None:
    """The language of a document with `language_id` if the settings (and the model) complete it, else None.

    Other documents are answered with no items, never an error.
    """
    enabled = enabled_language_ids(settings.server.languages, settings.model.model)
    return language_for_id(language_id) if canonical_language_id(language_id) in enabled else None


def stop_patterns(language: Language, settings: Settings) -> tuple[str, ...]:
    """The truncation patterns for `language`: the `truncateBeforePattern` setting for Python, else its own."""
    return settings.generation.truncate_before_pattern if language.name == "python" else language.stop_patterns


def max_prompt_chars(settings: Settings) -> int:
    return settings.generation.context_tokens * CHARS_PER_TOKEN


@dataclass(frozen=True)
class Plan:
    """One completion, decided and cut out of the document: what the model is asked and how to finish."""

    ctx: CompletionContext
    mode: Mode
    rule: StopRule
    snippets: str = ""  # other files' code as comments, before the file's text (lsp_server/workspace/snippets.py)
    file_start: int = 0  # where the file's text in the prompt starts in ctx.prompt (snippets take part of the budget)

    @property
    def prompt(self) -> str:
        """What the backend is asked: the snippets, then the file's text before the cursor."""
        return self.snippets + self.ctx.prompt[self.file_start :]


def plan(
    text: str, offset: int, settings: Settings, *, invoked: bool, language: Language = LANGUAGES["python"]
) -> Plan | None:
    """Decide, then build the context and the stop rule; None: no completion at this position."""
    offset = min(max(offset, 0), len(text))
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line_text = text[line_start : len(text) if line_end < 0 else line_end].removesuffix("\r")
    mode = decide(line_text, offset - line_start, invoked, language.identifier_extra)
    if mode is None:
        return None
    ctx = build_context(text, offset, max_prompt_chars(settings), language=language)
    return Plan(ctx, mode, stop_rule_for(ctx, stop_patterns(language, settings), mode))


def engine_request(planned: Plan, settings: Settings, *, request_id: int, document: str) -> CompletionRequest:
    """What the model backend is asked: the prompt and the generation options with the plan's stop rule."""
    options = settings.generation_options(planned.rule)
    return CompletionRequest(request_id, document, planned.prompt, options)
