"""The inference worker: a separate process that owns the model and answers completion requests in turn.

A receiver thread reads the pipe while the main thread computes, so a cancel (or a newer request for the same
document, which supersedes the older) reaches a running request at its next decode step. Every request is
answered: a CompletionResult, RequestCancelled or RequestFailed. Torch is imported here only inside the process.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections import deque
from multiprocessing.connection import Connection

from codegen_lsp.inference.protocol import (
    CancelRequest,
    CompletionRequest,
    ErrorKind,
    LoadFailed,
    LoadProgress,
    ModelReady,
    ModelSpec,
    RequestCancelled,
    RequestFailed,
    Shutdown,
    StopReason,
)

log = logging.getLogger("codegen_lsp.worker")


class Sender:
    """conn.send from two threads (results from the main thread, supersessions from the receiver)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, message: object) -> None:
        with self._lock:
            try:
                self._conn.send(message)
            except (BrokenPipeError, EOFError, OSError):
                pass  # the server is gone; the process ends when the receiver sees EOF


class RequestQueue:
    """Pending requests in arrival order. A newer request for a document supersedes the older ones."""

    def __init__(self, sender: Sender) -> None:
        self._sender = sender
        self._cond = threading.Condition()
        self._queue: deque[tuple[CompletionRequest, threading.Event]] = deque()
        self._running: tuple[CompletionRequest, threading.Event] | None = None
        self._closed = False

    def add(self, request: CompletionRequest) -> None:
        with self._cond:
            superseded = [item for item in self._queue if item[0].document == request.document]
            for item in superseded:
                self._queue.remove(item)
            if self._running and self._running[0].document == request.document:
                self._running[1].set()  # the running request stops at its next decode step
            self._queue.append((request, threading.Event()))
            self._cond.notify()
        for old, _ in superseded:
            self._sender.send(RequestCancelled(old.request_id))

    def cancel(self, request_id: int) -> None:
        with self._cond:
            if self._running and self._running[0].request_id == request_id:
                self._running[1].set()
                return
            for item in self._queue:
                if item[0].request_id == request_id:
                    self._queue.remove(item)
                    break
            else:
                return
        self._sender.send(RequestCancelled(request_id))

    def next(self) -> tuple[CompletionRequest, threading.Event] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            self._running = self._queue.popleft()
            return self._running

    def done(self) -> None:
        with self._cond:
            self._running = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            if self._running:
                self._running[1].set()
            self._cond.notify_all()
            pending, self._queue = list(self._queue), deque()
        for request, _ in pending:
            self._sender.send(RequestCancelled(request.request_id))


def receive(conn: Connection, queue: RequestQueue) -> None:
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break  # the server went away
        if isinstance(message, CompletionRequest):
            queue.add(message)
        elif isinstance(message, CancelRequest):
            queue.cancel(message.request_id)
        elif isinstance(message, Shutdown):
            break
    queue.close()


def load_engine(spec: ModelSpec, sender: Sender):
    """Load the model (reporting progress); None after telling the server why it failed."""
    import torch

    from codegen_lsp.inference.engine import Engine
    from codegen_lsp.inference.errors import ModelLoadError
    from codegen_lsp.inference.loading import load

    try:
        loaded = load(spec, report=lambda message, fraction: sender.send(LoadProgress(message, fraction)))
        factory, static = None, False
        if loaded.device.type == "cuda" and spec.cuda_graphs:
            from codegen_lsp.inference.cuda_graphs import cuda_graph_decode_step

            factory, static = (lambda cache: cuda_graph_decode_step(loaded.model, cache)), True
        engine = Engine(loaded, spec.cache_slots, spec.cache_reuse, decode_step_factory=factory, static_cache=static,
                        prompt_lookup=spec.prompt_lookup)
        sender.send(LoadProgress("warming up", 1.0))
        engine.warm_up()
    except ModelLoadError as exc:
        sender.send(LoadFailed(exc.kind, exc.message))
        return None
    except torch.OutOfMemoryError as exc:
        sender.send(LoadFailed(ErrorKind.OUT_OF_MEMORY, f"out of memory loading {spec.model}: {exc}"))
        return None
    except Exception as exc:  # noqa: BLE001 - any other failure is reported, never a hang
        traceback.print_exc(file=sys.stderr)
        sender.send(LoadFailed(ErrorKind.INTERNAL, f"loading {spec.model} failed: {type(exc).__name__}: {exc}"))
        return None
    sender.send(ModelReady(spec.model, str(loaded.folder), str(loaded.device), loaded.dtype_name,
                           loaded.config.n_positions, loaded.config.vocab_size, loaded.load_ms, loaded.warning))
    return engine


def serve_requests(engine, queue: RequestQueue, sender: Sender) -> None:
    import torch

    while (item := queue.next()) is not None:
        request, cancelled = item
        try:
            if cancelled.is_set():
                sender.send(RequestCancelled(request.request_id))
                continue
            result = engine.generate(request, cancelled.is_set)
            if cancelled.is_set() or result.candidates and result.candidates[0].stop_reason == StopReason.CANCELLED:
                sender.send(RequestCancelled(request.request_id))
            else:
                sender.send(result)
        except torch.OutOfMemoryError as exc:
            sender.send(RequestFailed(request.request_id, ErrorKind.OUT_OF_MEMORY, f"out of memory: {exc}"))
        except (ValueError, TypeError) as exc:
            sender.send(RequestFailed(request.request_id, ErrorKind.BAD_REQUEST, f"{type(exc).__name__}: {exc}"))
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc(file=sys.stderr)
            sender.send(RequestFailed(request.request_id, ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}"))
        finally:
            queue.done()


def worker_main(conn: Connection, spec: ModelSpec, log_level: str = "INFO") -> None:
    """The worker process's entry point (multiprocessing spawn)."""
    logging.basicConfig(stream=sys.stderr, level=log_level.upper(),
                        format="codegen-lsp worker %(levelname)s %(message)s")
    sender = Sender(conn)
    queue = RequestQueue(sender)
    threading.Thread(target=receive, args=(conn, queue), name="receiver", daemon=True).start()
    engine = load_engine(spec, sender)
    if engine is not None:
        serve_requests(engine, queue, sender)
    conn.close()
