"""The completion pipeline as pure functions, one step per module (after llm-ls and Tabby's agent):

plan (decide: complete at all? single or multi line; context: prompt window, cursor state, stop rule) ->
the backend generates -> postprocess (cut, de-duplicate, trim) -> typed_through (answer typing-ahead from
the last result). `lexical` asks the lexer they share (`inference.rules.syntax`, one table row per language;
`lsp_server.languages` has the rest of what differs between languages). `lsp_server/completer.py` runs them in
order, top-down, in one function.
"""

from codegen_lsp.lsp_server.pipeline.context import (
    CompletionContext,
    block_indent,
    build_context,
    stop_rule_for,
    window_start,
)
from codegen_lsp.lsp_server.pipeline.decide import Mode, choose_mode, decide, should_complete
from codegen_lsp.lsp_server.pipeline.lexical import Lex, LexState
from codegen_lsp.lsp_server.pipeline.plan import (
    Plan,
    completed_language,
    engine_request,
    max_prompt_chars,
    plan,
    stop_patterns,
)
from codegen_lsp.lsp_server.pipeline.postprocess import complete_lines, finish_items, postprocess
from codegen_lsp.lsp_server.pipeline.typed_through import TypedThroughCache

__all__ = [
    "CompletionContext",
    "Lex",
    "LexState",
    "Mode",
    "Plan",
    "TypedThroughCache",
    "block_indent",
    "build_context",
    "choose_mode",
    "completed_language",
    "complete_lines",
    "decide",
    "engine_request",
    "finish_items",
    "max_prompt_chars",
    "plan",
    "postprocess",
    "should_complete",
    "stop_patterns",
    "stop_rule_for",
    "window_start",
]
