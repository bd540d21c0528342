"""Completion requests against the worker: decide, typed-through, debounce, supersession, timings in the logs.

A newer request for a document supersedes every older one still pending for it, whatever step it is in
(debounce, in the worker): the older ones are answered with NO ITEMS, not an error. Editors (eglot, Neovim)
show error responses to the person, and an empty answer to a request the editor has moved on from is
harmless. A request the client cancels itself ($/cancelRequest) is answered with the RequestCancelled error
(-32800), as the spec asks: pygls cancels the handler's task, which cancels the worker request.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .completion import Prepared, finish, is_supported_language, make_request, prepare
from .pipeline import TypedThroughCache
from .settings import Settings

if TYPE_CHECKING:
    from codegen_lsp.inference.client import EngineClient

__all__ = ["CompletionService", "Outcome"]

log = logging.getLogger("codegen_lsp.server")


@dataclass
class Outcome:
    items: list[str]
    prepared: Prepared | None = None
    source: str = "engine"  # engine | typed-through | skipped | superseded | error
    detail: str = ""
    timings: dict[str, float] = field(default_factory=dict)


class CompletionService:
    def __init__(self, engine: Callable[[], EngineClient | None]) -> None:
        self._engine = engine
        self._ids = itertools.count(1)
        self._tickets: dict[str, int] = {}
        self._inflight: dict[str, int] = {}  # document -> worker request id
        self._debouncing: dict[str, asyncio.Event] = {}  # document -> wakes its request in the debounce
        self.typed_through = TypedThroughCache()
        self.stats: Counter[str] = Counter()

    def next_id(self) -> int:
        return next(self._ids)

    def forget(self, uri: str) -> None:
        """The document closed: drop its state and stop its work."""
        self.supersede(uri)
        self._tickets.pop(uri, None)
        self.typed_through.forget(uri)

    def reset(self) -> None:
        """Settings changed: remembered items were made under the old ones."""
        self.typed_through = TypedThroughCache()

    def supersede(self, uri: str) -> int:
        """Every older request for the document answers now with no items; the new request's ticket."""
        ticket = self._tickets.get(uri, 0) + 1
        self._tickets[uri] = ticket
        waiting = self._debouncing.pop(uri, None)
        if waiting is not None:
            waiting.set()  # the older request answers now, not when its debounce ends
        request_id = self._inflight.pop(uri, None)
        engine = self._engine()
        if request_id is not None and engine is not None:
            engine.cancel(request_id)
        return ticket

    async def complete(
        self,
        *,
        request_id: int,
        uri: str,
        text: str,
        offset: int,
        language_id: str,
        settings: Settings,
        invoked: bool,
        tag: str,
    ) -> Outcome:
        from codegen_lsp.inference.client import EngineError, RequestCancelledError

        start = time.perf_counter()
        ticket = self.supersede(uri)
        if not is_supported_language(language_id):
            return self._skip(tag, f"language {language_id!r} is not Python")
        prepared = prepare(text, offset, settings, invoked=invoked)
        if prepared is None:
            return self._skip(tag, "the cursor is before a word (automatic trigger)")
        typed = self.typed_through.lookup(uri, prepared.ctx)
        if typed is not None:
            self.stats["typed_through"] += 1
            log.info("%s: %d item(s) from typed-through in %.1f ms", tag, len(typed), _ms(start))
            return Outcome(typed, prepared, "typed-through")

        if settings.server.debounce_ms > 0:
            wake = self._debouncing[uri] = asyncio.Event()
            try:
                await asyncio.wait_for(wake.wait(), settings.server.debounce_ms / 1000)
            except asyncio.TimeoutError:  # TimeoutError since 3.11; 3.10 has its own
                pass
            finally:
                if self._debouncing.get(uri) is wake:
                    del self._debouncing[uri]
            if self._tickets.get(uri) != ticket:
                return self._superseded(tag, "during the debounce")

        engine = self._engine()
        if engine is None or engine.state in ("stopped", "failed"):
            why = (
                "the model failed to load" if engine is not None and engine.state == "failed" else "no model"
            )
            return self._skip(tag, why)

        request = make_request(prepared, settings, request_id=request_id, document=uri)
        self._inflight[uri] = request_id
        self.stats["engine_requests"] += 1
        sent = time.perf_counter()
        try:
            result = await engine.complete(request)
        except RequestCancelledError:
            return self._superseded(tag, "in the worker")
        except EngineError as error:
            self.stats["engine_errors"] += 1
            log.warning("%s: no completion: %s", tag, error.message)
            return Outcome([], prepared, "error", error.message)
        finally:
            if self._inflight.get(uri) == request_id:
                del self._inflight[uri]
        if self._tickets.get(uri) != ticket:
            return self._superseded(tag, "while the worker answered")

        items = finish(result, prepared)
        self.typed_through.remember(uri, prepared.ctx, items)
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
        stops = ",".join(c.stop_reason.value for c in result.candidates)
        log.info(
            "%s: %d item(s) in %.0f ms (worker %.0f ms: %d tokens reused, %d computed, prefill %.0f ms, "
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
            stops,
        )
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: raw %r -> items %r", tag, [c.text for c in result.candidates], items)
        return Outcome(items, prepared, "engine", timings=timings)

    def _skip(self, tag: str, why: str) -> Outcome:
        self.stats["skipped"] += 1
        log.debug("%s: no completion: %s", tag, why)
        return Outcome([], None, "skipped", why)

    def _superseded(self, tag: str, when: str) -> Outcome:
        self.stats["superseded"] += 1
        log.debug("%s: superseded by a newer request for the document %s", tag, when)
        return Outcome([], None, "superseded", when)


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000
