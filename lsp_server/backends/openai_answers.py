"""The shapes of the remote server's answers, checked: what `/v1/models`, `/tokenize` and a streamed
`/v1/completions` chunk must look like, read into plain values or refused with one `RemoteError` line
(BAD_ANSWER). Text from the server is made safe for every JSON client: lone surrogates and NUL become U+FFFD.
Pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from codegen_lsp.lsp_server.backends.openai_http import RemoteError, RemoteFailure

__all__ = ["ChoiceDelta", "model_names", "safe_text", "stream_choices", "token_list"]

_UNSAFE = re.compile("[\ud800-\udfff\x00]")  # lone surrogates (valid in JSON "\ud800", refused by strict clients), NUL


@dataclass(frozen=True)
class ChoiceDelta:
    """One choice of one streamed chunk."""

    index: int
    text: str
    token_ids: tuple[int, ...]
    finish_reason: str | None


def safe_text(text: str) -> str:
    """`text` with each lone surrogate and NUL replaced by U+FFFD (one code point for one)."""
    return text if text.isascii() and "\x00" not in text else _UNSAFE.sub("\ufffd", text)


def model_names(answer: Any, where: str) -> list[str]:
    """The model ids of a `/v1/models` answer: `{"data": [{"id": "..."}, ...]}`."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list) or not all(isinstance(m, dict) and isinstance(m.get("id"), str) for m in data):
        raise _bad(f"{where}/models did not list models (expected {{'data': [{{'id': ...}}]}})")
    return [safe_text(m["id"]) for m in data]


def token_list(answer: Any) -> list[int] | None:
    """The token ids of a vLLM `/tokenize` answer (`{"tokens": [...]}`); None for another shape."""
    tokens = answer.get("tokens") if isinstance(answer, dict) else None
    if isinstance(tokens, list) and all(_is_int(t) for t in tokens):
        return tokens
    return None


def stream_choices(event: Any, where: str) -> list[ChoiceDelta]:
    """The choices of one streamed `/v1/completions` chunk: `{"choices": [{"index", "text", "token_ids",
    "finish_reason"}]}` (a chunk without choices, as vLLM's last usage chunk, has none)."""
    if not isinstance(event, dict):
        raise _bad(f"{where} streamed a {type(event).__name__}, not a completion chunk")
    choices = event.get("choices") or []
    if not isinstance(choices, list):
        raise _bad(f"{where} streamed choices that are not a list")
    deltas = []
    for choice in choices:
        if not isinstance(choice, dict):
            raise _bad(f"{where} streamed a choice that is a {type(choice).__name__}, not an object")
        index, text = choice.get("index", 0), choice.get("text") or ""
        token_ids, finish = choice.get("token_ids") or [], choice.get("finish_reason")
        if not _is_int(index) or not isinstance(text, str) or not isinstance(finish, str | None):
            raise _bad(f"{where} streamed a choice with a wrong index, text or finish_reason")
        if not isinstance(token_ids, list) or not all(_is_int(t) for t in token_ids):
            raise _bad(f"{where} streamed token_ids that are not a list of integers")
        deltas.append(ChoiceDelta(index, safe_text(text), tuple(token_ids), finish))
    return deltas


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bad(message: str) -> RemoteError:
    return RemoteError(RemoteFailure.BAD_ANSWER, message)
