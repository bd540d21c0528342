"""What the completion pipeline needs from whatever generates: the local worker
(`lsp_server.backends.local.EngineClient`) or a remote server (`lsp_server.backends.openai.OpenAIBackend`). One
small interface, as llm-ls and lsp-ai put each API behind the same one, so the pipeline does not know which
backend answers.

Import-light on purpose (no backend module, no torch): the settings and the completer import it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from codegen_lsp.inference.protocol import CompletionRequest, CompletionResult, ErrorKind, PrefillRequest

__all__ = ["Backend", "BackendError", "BackendRequestCancelled", "BackendState", "RemoteSpec"]


class BackendState(str, enum.Enum):
    """Where a backend is in its life. str-valued: logs and the debug state show the bare value."""

    STOPPED = "stopped"  # not started, or stopped: requests fail at once
    LOADING = "loading"  # starting (the model loads, the server is not reached yet): requests wait or retry
    READY = "ready"
    FAILED = "failed"  # cannot work until the settings change (a bad model, a refused key): requests fail at once

    @property
    def usable(self) -> bool:
        """A request sent now may be answered (at once, or when loading ends)."""
        return self in (BackendState.LOADING, BackendState.READY)


class BackendError(Exception):
    """A request failed; `message` is for the person (names the file, key or setting at fault)."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class BackendRequestCancelled(Exception):
    """The request was cancelled, or superseded by a newer request for the same document."""


@dataclass(frozen=True)
class RemoteSpec:
    """Where the remote backend is. These defaults are the settings' defaults."""

    url: str = "http://127.0.0.1:8000/v1"  # the API base: .../v1
    model: str | None = None  # the served model's name; None: the server's only one
    api_key_env: str | None = None  # the NAME of an environment variable holding the key
    timeout_ms: int = 10000  # one request, connection to last byte


class Backend(Protocol):
    state: BackendState  # no request is sent while stopped or failed

    async def generate(self, request: CompletionRequest) -> CompletionResult:
        """The candidates for `request`; raises BackendError (with a message for the person) or
        BackendRequestCancelled (cancelled or superseded)."""
        ...

    async def prefill(self, request: PrefillRequest) -> CompletionResult | None:
        """Make the document's start cheap to complete later (it was opened); idle work, superseded by any
        request for the document. None: this backend has nothing to do ahead (a remote server keeps its own
        prefix cache). Raises as `generate` does."""
        ...

    def cancel(self, request_id: int) -> None:
        """Stop working on `request_id`: its `generate` raises BackendRequestCancelled."""
        ...

    async def stop(self) -> None:
        """End the backend's work and connections; pending requests are cancelled."""
        ...
