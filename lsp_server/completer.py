"""The request path, top-down in one function (`Completer.get_completions`), as llm-ls' `get_completions`:

    document + position -> plan (decide, context, stop rule) -> typed-through -> debounce -> backend
    -> post-process -> items

Every step but the debounce and the backend is a pure function of `pipeline/`. This module adds what needs
state across requests: supersession, debounce, the typed-through cache and counters.

A newer request for a document supersedes every older one still pending for it, whatever step it is in
(debounce, in the backend): the older ones are answered with NO ITEMS, not an error. Editors (eglot, Neovim)
show error responses to the person, and an empty answer to a request the editor has moved on from is
harmless. A request the client cancels itself ($/cancelRequest) is answered with the RequestCancelled error
(-32800), as the spec asks: pygls cancels the handler's task, which cancels the backend request.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, TypeVar

from codegen_lsp.inference.protocol import CompletionResult, PrefillRequest
from codegen_lsp.lsp_server.backends import Backend, BackendError, BackendRequestCancelled, BackendState
from codegen_lsp.lsp_server.documents import Document
from codegen_lsp.lsp_server.pipeline import (
    Plan,
    TypedThroughCache,
    completed_language,
    engine_request,
    finish_items,
    max_prompt_chars,
    plan,
)
from codegen_lsp.lsp_server.settings import Settings
from codegen_lsp.lsp_server.workspace.service import WorkspaceContext

__all__ = ["Completer", "Outcome"]

log = logging.getLogger("codegen_lsp.server")
T = TypeVar("T")

# Planning and post-processing are pure and linear, but over a megabyte (a minified line right of the cursor) they
# take a good part of a second: past this many characters they run in a thread, and other requests are answered.
OFF_LOOP_CHARS = 100_000


@dataclass
class Outcome:
    """What a request got: the items, the cursor as the request saw it (line, character in the session's
    units: the document may change while the backend runs), and why, for the logs and tests."""

    items: list[str]
    cursor: tuple[int, int] | None = None
    planned: Plan | None = None
    source: str = "backend"  # backend | typed-through | skipped | superseded | error
    detail: str = ""
    timings: dict[str, float] = field(default_factory=dict)


class Completer:
    def __init__(self, backend: Callable[[], Backend | None]) -> None:
        self._backend = backend
        self._ids = itertools.count(1)
        self._tickets: dict[str, int] = {}  # document -> number of its newest request
        self._inflight: dict[str, int] = {}  # document -> backend request id
        self._debouncing: dict[str, asyncio.Event] = {}  # document -> wakes its request in the debounce
        self.typed_through = TypedThroughCache()
        self.workspace = WorkspaceContext()  # snippets of other files (contextSnippetTokens)
        self.stats: Counter[str] = Counter()
        self._prefills: set[asyncio.Future] = set()
        self.on_generating: Callable[[bool], None] = lambda started: None  # the server's status: busy or not

    async def get_completions(
        self,
        uri: str,
        document: Document | None,
        line: int,
        character: int,
        *,
        encoding: str,
        settings: Settings,
        invoked: bool,
        kind: str,
    ) -> Outcome:
        start = time.perf_counter()
        if document is None:
            return self._skip(f"{kind} request for {uri}, which is not open")
        if line >= document.line_count:
            return self._skip(f"{kind} request at line {line} of {uri}, which has {document.line_count} lines")
        if not invoked and document.last_edit_deleted:
            # Peers' users complain of suggestions popping up on backspace: only typing asks automatically.
            self.supersede(uri)  # what was asked before the deletion is moot too
            return self._skip(f"{kind} request for {uri} right after a deletion", quiet=True)

        offset = document.offset_at(line, character, encoding)
        cursor = document.position_at(offset, encoding)
        request_id = next(self._ids)
        tag = f"#{request_id} {kind} {PurePosixPath(uri).name or uri}:{line + 1}:{character + 1}"
        ticket = self.supersede(uri)

        language = completed_language(document.language_id, settings)
        if language is None:
            return self._skip(f"{tag}: language {document.language_id!r} is not completed", quiet=True)
        text = document.text
        planned = await _pure(
            len(text) > OFF_LOOP_CHARS, plan, text, offset, settings, invoked=invoked, language=language
        )
        if planned is None:
            return self._skip(f"{tag}: the cursor is before a word (automatic trigger)", quiet=True)

        typed = self.typed_through.lookup(uri, planned.ctx)
        if typed is not None:
            self.stats["typed_through"] += 1
            log.info("%s: %d item(s) from typed-through in %.1f ms", tag, len(typed), _ms(start))
            return Outcome(typed, cursor, planned, "typed-through")

        if not await self._debounce(uri, ticket, settings.server.debounce_ms):
            return self._superseded(tag, "during the debounce")

        backend = self._backend()
        if backend is None or not backend.state.usable:
            failed = backend is not None and backend.state is BackendState.FAILED
            return self._skip(f"{tag}: {'the model failed to load' if failed else 'no model'}", quiet=True)
        planned = await self.workspace.attach(planned, uri, text, offset, settings)
        request = engine_request(planned, settings, request_id=request_id, document=uri)
        self._inflight[uri] = request_id
        self.stats["engine_requests"] += 1
        sent = time.perf_counter()
        self.on_generating(True)
        try:
            result = await backend.generate(request)
        except BackendRequestCancelled:
            return self._superseded(tag, "in the backend")
        except BackendError as error:
            self.stats["engine_errors"] += 1
            log.warning("%s: no completion: %s", tag, error.message)
            return Outcome([], cursor, planned, "error", error.message)
        finally:
            self.on_generating(False)
            if self._inflight.get(uri) == request_id:
                del self._inflight[uri]
        if self._tickets.get(uri) != ticket:
            return self._superseded(tag, "while the backend answered")

        long = len(planned.ctx.line_suffix) > OFF_LOOP_CHARS
        items = await _pure(long, finish_items, result, planned.ctx, planned.rule)
        self.typed_through.remember(uri, planned.ctx, items)
        timings = _log_result(tag, result, items, start, sent)
        return Outcome(items, cursor, planned, "backend", timings=timings)

    # -- supersession and debounce ---------------------------------------------------------------------------

    def supersede(self, uri: str) -> int:
        """Every older request for the document answers now with no items; the new request's ticket."""
        ticket = self._tickets.get(uri, 0) + 1
        self._tickets[uri] = ticket
        waiting = self._debouncing.pop(uri, None)
        if waiting is not None:
            waiting.set()  # the older request answers now, not when its debounce ends
        request_id = self._inflight.pop(uri, None)
        backend = self._backend()
        if request_id is not None and backend is not None:
            backend.cancel(request_id)
        return ticket

    async def _debounce(self, uri: str, ticket: int, debounce_ms: int) -> bool:
        """Wait out the debounce; False when a newer request for the document came meanwhile."""
        if debounce_ms > 0:
            wake = self._debouncing[uri] = asyncio.Event()
            try:
                await asyncio.wait_for(wake.wait(), debounce_ms / 1000)
            except asyncio.TimeoutError:  # TimeoutError since 3.11; 3.10 has its own
                pass
            finally:
                if self._debouncing.get(uri) is wake:
                    del self._debouncing[uri]
        return self._tickets.get(uri) == ticket

    def prefill(self, uri: str, document: Document, settings: Settings) -> None:
        """The document was opened: the backend makes its start cheap to complete (the local worker fills its KV
        cache) while the person reads, so that the first keystroke computes only what it changed. Idle work: any
        request for the document supersedes it, and the worker puts requests for other documents first."""
        backend = self._backend()
        if backend is None or not backend.state.usable:
            return
        if completed_language(document.language_id, settings) is None or not document.text.strip():
            return
        prompt = document.text[: max_prompt_chars(settings)]
        request = PrefillRequest(next(self._ids), uri, prompt, settings.generation.context_tokens)
        task = asyncio.ensure_future(self._prefill(backend, request))
        self._prefills.add(task)  # held: asyncio keeps only weak references to tasks
        task.add_done_callback(self._prefills.discard)

    async def _prefill(self, backend: Backend, request: PrefillRequest) -> None:
        started = time.perf_counter()
        try:
            result = await backend.prefill(request)
        except (BackendRequestCancelled, BackendError) as error:
            log.debug("prefill of %s stopped: %s", request.document, getattr(error, "message", "superseded"))
            return
        if result is None:
            return  # nothing to do ahead on this backend
        self.stats["prefills"] += 1
        log.info(
            "prefilled %s: %d tokens in %.0f ms",
            PurePosixPath(request.document).name,
            result.timings.tokens_computed,
            _ms(started),
        )

    def forget(self, uri: str) -> None:
        """The document closed: drop its state and stop its work."""
        self.supersede(uri)
        self._tickets.pop(uri, None)
        self.typed_through.forget(uri)
        self.workspace.closed(uri)

    def reset(self) -> None:
        """Settings changed: remembered items were made under the old ones."""
        self.typed_through = TypedThroughCache()

    def _skip(self, why: str, quiet: bool = False) -> Outcome:
        self.stats["skipped"] += 1
        log.log(logging.DEBUG if quiet else logging.INFO, "no items: %s", why)
        return Outcome([], source="skipped", detail=why)

    def _superseded(self, tag: str, when: str) -> Outcome:
        self.stats["superseded"] += 1
        log.debug("%s: superseded by a newer request for the document %s", tag, when)
        return Outcome([], source="superseded", detail=when)


def _log_result(tag: str, result: CompletionResult, items: list[str], start: float, sent: float) -> dict[str, float]:
    t = result.timings
    timings = {
        "total_ms": _ms(start),
        "engine_ms": t.total_ms,
        "round_trip_ms": _ms(sent),
        "tokens_reused": t.tokens_reused,
        "tokens_computed": t.tokens_computed,
        "prefill_ms": t.prefill_ms,
        "decode_ms": t.decode_ms,
        "forward_passes": t.forward_passes,
        "prompt_tokens": result.prompt_tokens,
    }
    log.info(
        "%s: %d item(s) in %.0f ms (backend %.0f ms: %d tokens reused, %d computed, prefill %.0f ms, "
        "decode %.0f ms, %d forward passes; stop %s)",
        tag,
        len(items),
        timings["total_ms"],
        t.total_ms,
        t.tokens_reused,
        t.tokens_computed,
        t.prefill_ms,
        t.decode_ms,
        t.forward_passes,
        ",".join(c.stop_reason.value for c in result.candidates),
    )
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s: raw %r -> items %r", tag, [c.text for c in result.candidates], items)
    return timings


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


async def _pure(long: bool, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`function(*args, **kwargs)`, a pure pipeline step: in a thread when it can be long (its inputs are
    immutable), else here."""
    if long:
        return await asyncio.to_thread(function, *args, **kwargs)
    return function(*args, **kwargs)
