"""What the completion pipeline needs from whatever generates: the local worker (`inference.client.EngineClient`)
or a remote server. One small interface, as llm-ls and lsp-ai put each API behind the same one, so the pipeline
does not know which backend answers."""

from __future__ import annotations

from typing import Protocol

from codegen_lsp.inference.client import EngineError as BackendError
from codegen_lsp.inference.client import RequestCancelledError as BackendRequestCancelled
from codegen_lsp.inference.protocol import CompletionRequest, CompletionResult

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
