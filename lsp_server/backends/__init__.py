"""What the completion pipeline needs from whatever generates: the local worker
(`lsp_server.backends.local.EngineClient`) or a remote server (`lsp_server.backends.openai.OpenAIBackend`). One
small interface, as llm-ls and lsp-ai put each API behind the same one, so the pipeline does not know which
backend answers."""

from __future__ import annotations

from typing import Protocol

from codegen_lsp.inference.protocol import CompletionRequest, CompletionResult
from codegen_lsp.lsp_server.backends.local import EngineError as BackendError
from codegen_lsp.lsp_server.backends.local import RequestCancelledError as BackendRequestCancelled

__all__ = ["Backend", "BackendError", "BackendRequestCancelled"]


class Backend(Protocol):
    state: str  # stopped | loading | ready | failed: no request is sent while stopped or failed

    async def generate(self, request: CompletionRequest) -> CompletionResult:
        """The candidates for `request`; raises BackendError (with a message for the person) or
        BackendRequestCancelled (cancelled or superseded)."""
        ...

    def cancel(self, request_id: int) -> None:
        """Stop working on `request_id`: its `generate` raises BackendRequestCancelled."""
        ...
