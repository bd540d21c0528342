"""The server's handle on the inference worker: `await engine.generate(request)`. Torch-free.

The worker is a `spawn`ed process. A reader thread turns its messages into events on the asyncio loop. If the
worker dies (OOM killer, segfault, kill -9) the requests in flight fail with a clear error, and a new worker is
started after a backoff that grows with consecutive crashes; the next request is served by it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

from codegen_lsp.inference.protocol import (
    CancelRequest,
    CompletionRequest,
    CompletionResult,
    ErrorKind,
    LoadFailed,
    ModelReady,
    ModelSpec,
    RequestCancelled,
    RequestFailed,
    Shutdown,
    WorkerEvent,
    WorkerExited,
)

log = logging.getLogger("codegen_lsp.client")

RESTART_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
STABLE_AFTER_S = 10.0  # a worker that ran this long after loading resets the backoff


class EngineError(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class RequestCancelledError(Exception):
    """The request was cancelled, or superseded by a newer request for the same document."""


def describe_exit(code: int | None) -> str:
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class EngineClient:
    def __init__(self, spec: ModelSpec, on_event: Callable[[WorkerEvent], None] | None = None,
                 log_level: str = "INFO", restart_delays: tuple[float, ...] = RESTART_DELAYS_S) -> None:
        self.spec = spec
        self.on_event = on_event
        self.log_level = log_level
        self.restart_delays = restart_delays
        self.state = "stopped"  # stopped | loading | ready | failed
        self.ready_info: ModelReady | None = None
        self.load_error: LoadFailed | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._generation = itertools.count()
        self._current = -1
        self._pending: dict[int, asyncio.Future] = {}
        self._changed = asyncio.Event()
        self._crashes = 0
        self._ready_at = 0.0
        self._restart_handle: asyncio.TimerHandle | None = None

    # --- life cycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._spawn()

    def _spawn(self) -> None:
        self._restart_handle = None
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe(duplex=True)
        from codegen_lsp.inference.worker import worker_main  # torch-free at import; torch loads inside the child

        process = context.Process(target=worker_main, args=(child, self.spec, self.log_level),
                                  name="codegen-lsp-worker", daemon=True)
        process.start()
        child.close()
        self._process, self._conn = process, parent
        self._current = generation = next(self._generation)
        self.ready_info, self.load_error = None, None
        self._set_state("loading")
        threading.Thread(target=self._read, args=(parent, generation), name="worker-reader", daemon=True).start()
        log.info("started inference worker pid %s for %s", process.pid, self.spec.model)

    def _read(self, conn: Connection, generation: int) -> None:
        """Reader thread: everything the worker says goes to the loop, then its death."""
        assert self._loop is not None
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            except Exception as exc:  # noqa: BLE001 - an unpicklable message must not kill the reader
                log.error("unreadable message from the worker: %s", exc)
                continue
            self._loop.call_soon_threadsafe(self._on_message, generation, message)
        try:
            self._loop.call_soon_threadsafe(self._on_worker_gone, generation)
        except RuntimeError:
            pass  # the loop is closed: the server is exiting

    async def stop(self) -> None:
        """Ask the worker to finish, then make sure it is gone. Pending requests are cancelled."""
        self._set_state("stopped")
        await self._end_worker()

    async def reload(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._set_state("stopped")
        await self._end_worker()
        self._crashes = 0
        self._spawn()

    async def _end_worker(self) -> None:
        if self._restart_handle is not None:
            self._restart_handle.cancel()
            self._restart_handle = None
        process, conn = self._process, self._conn
        self._process, self._conn, self._current = None, None, -1
        self._fail_pending(RequestCancelledError("the engine is stopping"))
        if conn is not None:
            try:
                conn.send(Shutdown())
            except (BrokenPipeError, EOFError, OSError):
                pass
        if process is not None:
            await asyncio.to_thread(process.join, 5.0)
            if process.is_alive():
                process.kill()
                await asyncio.to_thread(process.join, 5.0)
        if conn is not None:
            conn.close()

    # --- requests ---------------------------------------------------------------------------------------------

    async def wait_ready(self, timeout: float | None = None) -> ModelReady:
        async def wait() -> ModelReady:
            while True:
                if self.state == "ready" and self.ready_info is not None:
                    return self.ready_info
                self._raise_if_unusable()
                await self._wait_change()

        return await asyncio.wait_for(wait(), timeout)

    async def generate(self, request: CompletionRequest) -> CompletionResult:
        while self._conn is None or self.state not in ("loading", "ready"):
            self._raise_if_unusable()
            await self._wait_change()  # a restart is pending
        assert self._loop is not None
        future: asyncio.Future = self._loop.create_future()
        self._pending[request.request_id] = future
        try:
            self._conn.send(request)
        except (BrokenPipeError, EOFError, OSError):
            self._pending.pop(request.request_id, None)
            raise EngineError(ErrorKind.WORKER_DIED, "the inference worker is not running; restarting it") from None
        try:
            return await future
        except asyncio.CancelledError:
            self.cancel(request.request_id)
            raise
        finally:
            self._pending.pop(request.request_id, None)

    def cancel(self, request_id: int) -> None:
        if self._conn is not None:
            try:
                self._conn.send(CancelRequest(request_id))
            except (BrokenPipeError, EOFError, OSError):
                pass

    # --- events -----------------------------------------------------------------------------------------------

    def _raise_if_unusable(self) -> None:
        if self.state == "failed" and self.load_error is not None:
            raise EngineError(self.load_error.kind, self.load_error.message)
        if self.state == "stopped":
            raise EngineError(ErrorKind.INTERNAL, "the inference engine is stopped")

    async def _wait_change(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    def _set_state(self, state: str) -> None:
        self.state = state
        self._changed.set()

    def _emit(self, event: WorkerEvent) -> None:
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # noqa: BLE001 - a faulty listener must not break the engine
                log.exception("event listener failed on %r", event)

    def _on_message(self, generation: int, message: object) -> None:
        if generation != self._current:
            return
        if isinstance(message, CompletionResult | RequestCancelled | RequestFailed):
            future = self._pending.get(message.request_id)
            if future is None or future.done():
                return
            if isinstance(message, CompletionResult):
                future.set_result(message)
            elif isinstance(message, RequestCancelled):
                future.set_exception(RequestCancelledError(f"request {message.request_id} was cancelled"))
            else:
                future.set_exception(EngineError(message.kind, message.message))
            return
        if isinstance(message, ModelReady):
            self.ready_info = message
            self._ready_at = time.monotonic()
            self._set_state("ready")
        elif isinstance(message, LoadFailed):
            self.load_error = message
            self._set_state("failed")
            self._fail_pending(EngineError(message.kind, message.message))
        self._emit(message)  # LoadProgress, ModelReady, LoadFailed

    def _on_worker_gone(self, generation: int) -> None:
        if generation != self._current:
            return  # an old worker we stopped on purpose
        process = self._process
        if process is not None:
            process.join(1.0)
        code = process.exitcode if process is not None else None
        self._process, self._conn, self._current = None, None, -1
        if self.state in ("failed", "stopped"):
            return  # the worker reported a load failure and ended, or we stopped it
        if self.state == "ready" and time.monotonic() - self._ready_at > STABLE_AFTER_S:
            self._crashes = 0
        delay = self.restart_delays[min(self._crashes, len(self.restart_delays) - 1)]
        self._crashes += 1
        message = f"the inference worker exited unexpectedly ({describe_exit(code)}); restarting in {delay:g} s"
        log.error(message)
        self._fail_pending(EngineError(ErrorKind.WORKER_DIED, message))
        self._set_state("loading")
        self._emit(WorkerExited(code, message, restarting=True, restart_in_s=delay))
        assert self._loop is not None
        self._restart_handle = self._loop.call_later(delay, self._spawn)

    def _fail_pending(self, error: Exception) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)
