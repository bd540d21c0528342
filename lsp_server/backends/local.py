"""The server's handle on the inference worker: `await engine.generate(request)`. Torch-free.

The worker is a `spawn`ed process. A reader thread turns its messages into events on the asyncio loop; a writer
thread sends to it, so that the loop never blocks on a full pipe. If the worker dies (OOM killer, segfault,
kill -9) the requests in flight fail with a clear error, and a new worker is started after a backoff that grows
with consecutive crashes; the next request is served by it.

Every request is answered within a bound, whatever the worker does:
- a cancelled or superseded request (a newer one for the same document) is answered here at once; the worker
  is told, and its own answer is not waited for;
- a worker that stops answering (SIGSTOP, a deadlock, a hang that holds the GIL) is found by a heartbeat: a Ping
  every `ping_interval_s`, answered by the worker's receiver thread (not its compute thread, so a long load or
  a long prefill still answers). No answer for `stall_after_s` after a ping: the worker is killed and restarted,
  and the requests in flight fail;
- a request on which the worker makes no progress for `request_timeout_s` (no decode step, no load progress,
  no answer) fails with ErrorKind.TIMEOUT and is cancelled in the worker, which is left running.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import multiprocessing
import queue
import re
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
    Ping,
    Pong,
    PrefillRequest,
    RequestCancelled,
    RequestFailed,
    Shutdown,
    WorkerEvent,
    WorkerExited,
    WorkerRequest,
)
from codegen_lsp.lsp_server.backends import BackendError, BackendRequestCancelled, BackendState

WORKER_EXIT_GRACE_S = 0.5  # then SIGKILL

log = logging.getLogger("codegen_lsp.client")

RESTART_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
STABLE_AFTER_S = 10.0  # a worker that ran this long after loading resets the backoff
PING_INTERVAL_S = 1.0
STALL_AFTER_S = 20.0  # no answer to a ping for this long: the worker is stuck (its receiver thread answers pings)
REQUEST_TIMEOUT_S = 120.0  # no progress on a request for this long: it fails (generous: a slow CPU's prefill)


# The local backend's names for the backends' errors (tests and the remote backend import them from here).
EngineError = BackendError
RequestCancelledError = BackendRequestCancelled


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
    def __init__(
        self,
        spec: ModelSpec,
        on_event: Callable[[WorkerEvent], None] | None = None,
        log_level: str = "INFO",
        restart_delays: tuple[float, ...] = RESTART_DELAYS_S,
        ping_interval_s: float = PING_INTERVAL_S,
        stall_after_s: float = STALL_AFTER_S,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.spec = spec
        self.on_event = on_event
        self.log_level = log_level
        self.restart_delays = restart_delays
        self.ping_interval_s = ping_interval_s
        self.stall_after_s = stall_after_s
        self.request_timeout_s = request_timeout_s
        self.state = BackendState.STOPPED
        self.ready_info: ModelReady | None = None
        self.load_error: LoadFailed | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._generation = itertools.count()
        self._current = -1
        self._pending: dict[int, asyncio.Future] = {}
        self._sent_at: dict[int, float] = {}  # request id -> when it was sent (monotonic)
        self._documents: dict[str, int] = {}  # document -> its request in flight (a newer one supersedes it)
        self._changed = asyncio.Event()
        self._crashes = 0
        self._ready_at = 0.0
        self._restart_handle: asyncio.TimerHandle | None = None
        self._outbox: queue.SimpleQueue | None = None  # what the writer thread sends to the current worker
        self._heartbeat: asyncio.Task | None = None
        self._pings = itertools.count()
        self._unanswered_since: float | None = None  # the first ping sent since the worker was last heard
        self._progress_at = 0.0  # when the worker last made progress (monotonic)
        self._steps = -1  # the worker's decode step counter, as its last Pong said
        self._stalled: int | None = None  # the generation killed for not answering

    # --- life cycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._spawn()
        self._heartbeat = asyncio.ensure_future(self._beat())

    def _spawn(self) -> None:
        self._restart_handle = None
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe(duplex=True)
        from codegen_lsp.inference.worker.main import worker_main  # torch-free at import; torch loads inside the child

        process = context.Process(
            target=worker_main, args=(child, self.spec, self.log_level), name="codegen-lsp-worker", daemon=True
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent
        self._current = generation = next(self._generation)
        self.ready_info, self.load_error = None, None
        self._unanswered_since, self._progress_at, self._steps = None, time.monotonic(), -1
        self._outbox = queue.SimpleQueue()
        self._set_state(BackendState.LOADING)
        threading.Thread(target=self._read, args=(parent, generation), name="worker-reader", daemon=True).start()
        threading.Thread(target=_write, args=(parent, self._outbox), name="worker-writer", daemon=True).start()
        log.info("started inference worker pid %s for %s", process.pid, self.spec.model)

    def _send(self, message: object) -> None:
        """To the current worker, through the writer thread: never blocks, whatever the worker does."""
        if self._outbox is not None:
            self._outbox.put(message)

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
            if generation == self._current:
                self._unanswered_since = None  # heard: here, not on the loop, which may be busy
            if isinstance(message, Pong):
                self._loop.call_soon_threadsafe(self._on_pong, generation, message)
                continue
            self._loop.call_soon_threadsafe(self._on_message, generation, message)
        try:
            self._loop.call_soon_threadsafe(self._on_worker_gone, generation)
        except RuntimeError:
            pass  # the loop is closed: the server is exiting

    async def stop(self) -> None:
        """Ask the worker to finish, then make sure it is gone. Pending requests are cancelled."""
        self._set_state(BackendState.STOPPED)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        await self._end_worker()

    async def reload(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._set_state(BackendState.STOPPED)
        await self._end_worker()
        self._crashes = 0
        self._spawn()

    async def _end_worker(self) -> None:
        if self._restart_handle is not None:
            self._restart_handle.cancel()
            self._restart_handle = None
        process, conn, outbox = self._process, self._conn, self._outbox
        self._process, self._conn, self._current, self._outbox = None, None, -1, None
        self._fail_pending(BackendRequestCancelled("the engine is stopping"))
        if outbox is not None:
            outbox.put(Shutdown())
            outbox.put(None)  # the writer ends
        if process is not None:
            # Editors kill a server that has not exited 2 s after `exit` (vscode-languageclient, eglot 1.5 s), and
            # on a busy machine our own exit took 1.4-2.0 s with a 1 s grace here: the worker gets 0.5 s to end by
            # itself (it keeps nothing that a kill would lose: conversions are atomic).
            await asyncio.to_thread(process.join, WORKER_EXIT_GRACE_S)
            if process.is_alive():
                process.kill()
                await asyncio.to_thread(process.join, 5.0)
        if conn is not None:
            conn.close()

    # --- requests ---------------------------------------------------------------------------------------------

    async def wait_ready(self, timeout: float | None = None) -> ModelReady:
        async def wait() -> ModelReady:
            while True:
                if self.state is BackendState.READY and self.ready_info is not None:
                    return self.ready_info
                self._raise_if_unusable()
                await self._wait_change()

        return await asyncio.wait_for(wait(), timeout)

    async def generate(self, request: CompletionRequest) -> CompletionResult:
        return await self._submit(request)

    async def prefill(self, request: PrefillRequest) -> CompletionResult:
        """The worker fills the document's KV cache while the person reads (see PrefillRequest)."""
        return await self._submit(request)

    async def _submit(self, request: WorkerRequest) -> CompletionResult:
        assert self._loop is not None
        request_id = request.request_id
        future: asyncio.Future = self._loop.create_future()
        self._pending[request_id] = future
        self._sent_at[request_id] = time.monotonic()
        older = self._documents.get(request.document)
        self._documents[request.document] = request_id
        if older is not None:
            self._answer(older, BackendRequestCancelled(f"request {older} was superseded by {request_id}"))
        try:
            while self._conn is None or not self.state.usable:
                self._raise_if_unusable()
                # A restart is pending: the heartbeat times the request out if it never comes.
                change = asyncio.ensure_future(self._wait_change())
                try:
                    await asyncio.wait({future, change}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    change.cancel()
                if future.done():
                    return future.result()
            self._sent_at[request_id] = time.monotonic()
            self._send(well_formed(request))
            return await future
        except asyncio.CancelledError:
            self.cancel(request_id)
            raise
        finally:
            self._pending.pop(request_id, None)
            self._sent_at.pop(request_id, None)
            if self._documents.get(request.document) == request_id:
                del self._documents[request.document]

    def cancel(self, request_id: int) -> None:
        """Stop working on `request_id`: its `generate` raises BackendRequestCancelled now, not when the worker
        confirms (a stuck worker never does)."""
        self._answer(request_id, BackendRequestCancelled(f"request {request_id} was cancelled"))
        self._send(CancelRequest(request_id))

    def _answer(self, request_id: int, outcome: object) -> None:
        future = self._pending.pop(request_id, None)
        self._sent_at.pop(request_id, None)
        if future is None or future.done():
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    # --- the heartbeat ------------------------------------------------------------------------------------------

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval_s)
            try:
                self._check_worker()
            except Exception:  # noqa: BLE001 - the heartbeat must outlive any one mistake
                log.exception("worker heartbeat")

    def _check_worker(self) -> None:
        now = time.monotonic()
        if self._process is None or self._conn is None:
            for request_id in list(self._pending):  # waiting for a restart that may never come
                if now - self._sent_at.get(request_id, now) > self.request_timeout_s:
                    self._answer(request_id, BackendError(ErrorKind.TIMEOUT, "no inference worker is running"))
            return
        unanswered = self._unanswered_since
        if unanswered is not None and now - unanswered > self.stall_after_s:
            log.error(
                "the inference worker (pid %s) has not answered for %.0f s: killing it",
                self._process.pid,
                now - unanswered,
            )
            self._stalled = self._current
            self._process.kill()  # the reader sees the pipe close: the restart follows (_on_worker_gone)
            return
        if unanswered is None:
            self._unanswered_since = now
        self._send(Ping(next(self._pings)))
        for request_id in list(self._pending):
            waited = now - max(self._sent_at.get(request_id, now), self._progress_at)
            if waited > self.request_timeout_s:
                self._answer(
                    request_id,
                    BackendError(
                        ErrorKind.TIMEOUT, f"the inference worker made no progress on the request for {waited:.0f} s"
                    ),
                )
                self._send(CancelRequest(request_id))

    def _on_pong(self, generation: int, pong: Pong) -> None:
        if generation == self._current and pong.steps != self._steps:
            self._steps = pong.steps
            self._progress_at = time.monotonic()

    # --- events -----------------------------------------------------------------------------------------------

    def _raise_if_unusable(self) -> None:
        if self.state is BackendState.FAILED and self.load_error is not None:
            raise BackendError(self.load_error.kind, self.load_error.message)
        if self.state is BackendState.STOPPED:
            raise BackendError(ErrorKind.INTERNAL, "the inference engine is stopped")

    async def _wait_change(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    def _set_state(self, state: BackendState) -> None:
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
        self._progress_at = time.monotonic()
        if isinstance(message, CompletionResult):
            self._answer(message.request_id, message)
            return
        if isinstance(message, RequestCancelled):
            self._answer(message.request_id, BackendRequestCancelled(f"request {message.request_id} was cancelled"))
            return
        if isinstance(message, RequestFailed):
            self._answer(message.request_id, BackendError(message.kind, message.message))
            return
        if isinstance(message, ModelReady):
            self.ready_info = message
            self._ready_at = time.monotonic()
            self._set_state(BackendState.READY)
        elif isinstance(message, LoadFailed):
            self.load_error = message
            self._set_state(BackendState.FAILED)
            self._fail_pending(BackendError(message.kind, message.message))
        self._emit(message)  # LoadProgress, ModelReady, LoadFailed

    def _on_worker_gone(self, generation: int) -> None:
        if generation != self._current:
            return  # an old worker we stopped on purpose
        process = self._process
        if process is not None:
            process.join(1.0)
        code = process.exitcode if process is not None else None
        if self._outbox is not None:
            self._outbox.put(None)  # the writer ends
        self._process, self._conn, self._current, self._outbox = None, None, -1, None
        if not self.state.usable:
            return  # the worker reported a load failure and ended, or we stopped it
        if self.state is BackendState.READY and time.monotonic() - self._ready_at > STABLE_AFTER_S:
            self._crashes = 0
        delay = self.restart_delays[min(self._crashes, len(self.restart_delays) - 1)]
        self._crashes += 1
        why = (
            f"stopped answering for {self.stall_after_s:g} s and was killed"
            if self._stalled == generation
            else f"exited unexpectedly ({describe_exit(code)})"
        )
        message = f"the inference worker {why}; restarting in {delay:g} s"
        log.error(message)
        self._fail_pending(BackendError(ErrorKind.WORKER_DIED, message))
        self._set_state(BackendState.LOADING)
        self._emit(WorkerExited(message, restarting=True))
        assert self._loop is not None
        self._restart_handle = self._loop.call_later(delay, self._spawn)

    def _fail_pending(self, error: Exception) -> None:
        for request_id in list(self._pending):
            self._answer(request_id, error)


def _write(conn: Connection, outbox: queue.SimpleQueue) -> None:
    """Writer thread: sends to one worker until told to end (None) or the pipe breaks."""
    while (message := outbox.get()) is not None:
        try:
            conn.send(message)
        except (BrokenPipeError, EOFError, OSError, ValueError):
            return  # the worker is gone: the reader reports it
        except Exception as exc:  # noqa: BLE001 - an unpicklable message must not end the writer
            log.error("could not send %s to the worker: %s", type(message).__name__, exc)


_SURROGATE = re.compile("[\ud800-\udfff]")


def well_formed(request: WorkerRequest) -> WorkerRequest:
    """JSON lets a client send lone surrogates ("\\ud800"); no tokenizer takes them. Each becomes U+FFFD, one
    code point for one, so every offset into the prompt stays right."""
    prompt = request.prompt
    if not isinstance(prompt, str) or prompt.isascii() or not _SURROGATE.search(prompt):
        return request
    return dataclasses.replace(request, prompt=_SURROGATE.sub("\ufffd", prompt))
