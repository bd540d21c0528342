"""The completion pipeline as pure functions, one step per module (after llm-ls and Tabby's agent):

decide (complete at all? single or multi line) -> context (prompt window, cursor state, stop rule) ->
the worker generates -> postprocess (cut, de-duplicate, trim) -> typed_through (answer typing-ahead from the
last result). `lexical` is the small Python lexer they share.
"""

from .context import CompletionContext, block_indent, build_context, stop_rule_for, window_start
from .decide import Mode, choose_mode, decide, should_complete
from .lexical import Lex, LexState
from .postprocess import postprocess
from .typed_through import TypedThroughCache

__all__ = [
    "CompletionContext",
    "Lex",
    "LexState",
    "Mode",
    "TypedThroughCache",
    "block_indent",
    "build_context",
    "choose_mode",
    "decide",
    "postprocess",
    "should_complete",
    "stop_rule_for",
    "window_start",
]
