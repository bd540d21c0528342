"""The inference worker: a separate process that owns the model and answers completion requests in turn.

A receiver thread reads the pipe while the main thread computes, so a cancel (or a newer request for the same
document, which supersedes the older) reaches a running request at its next decode step, and a Ping is answered
at once (a Pong with the count of decode steps taken: the server tells a stuck worker from a busy one). Every
request is answered: a CompletionResult, RequestCancelled or RequestFailed. Torch is imported here only inside
the process.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from codegen_lsp.inference.protocol import (
    CancelRequest,
    CompletionRequest,
    ErrorKind,
    LoadFailed,
    LoadProgress,
    ModelReady,
    ModelSpec,
    Ping,
    Pong,
    PrefillRequest,
    RequestCancelled,
    RequestFailed,
    Shutdown,
    StopReason,
    WorkerRequest,
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


@dataclass(eq=False)
class Job:
    """A request in the worker: `stop` is what its decode loop polls; `preempted` says the stop is a pause."""

    request: WorkerRequest
    stop: threading.Event = field(default_factory=threading.Event)
    preempted: bool = False

    def paused(self) -> bool:
        """Asked between the model's blocks in a prefill chunk: stop there only for a request of another document
        (a newer request of this document needs the chunk too, so the chunk ends first)."""
        return self.preempted and self.stop.is_set()

    @property
    def idle(self) -> bool:
        """Prefill ahead of the first keystroke: done only when nothing else waits."""
        return isinstance(self.request, PrefillRequest)


class RequestQueue:
    """Which request runs next: the newest one, so that the document being typed in never waits behind another.

    Newest means the largest request id: the server numbers requests in the order the keystrokes came, while
    they may reach the worker in another (the server plans a large document's request in a thread, so a
    request for a small file typed later can overtake it). A newer request for a document supersedes that
    document's older ones (answered RequestCancelled). A newer request for another document preempts the running
    one: it stops at its next decode step (or between two blocks of a prefill chunk, dropping that chunk) and goes
    back to the queue; the KV cache keeps the chunks it completed, so resuming costs little. An older one waits.
    Idle work (prefill of an opened document) runs only when no request waits, and yields to any. A newer request
    of the same document lets the running prefill chunk end: the newcomer needs it too.
    """

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self._cond = threading.Condition()
        self._waiting: list[Job] = []  # next() takes the one with the largest request id
        self._idle: deque[Job] = deque()  # oldest first
        self._running: Job | None = None
        self._closed = False
        self.steps = 0  # decode steps taken (and requests begun): read by the receiver thread for Pong

    def add(self, request: WorkerRequest) -> None:
        job = Job(request)
        with self._cond:
            superseded = [j for j in self._queued() if j.request.document == request.document]
            self._drop(superseded)
            running = self._running
            if running is not None and not running.stop.is_set():
                if running.request.document == request.document:
                    running.preempted = False  # superseded: it ends, answered RequestCancelled
                    running.stop.set()
                elif not job.idle and (running.idle or request.request_id > running.request.request_id):
                    running.preempted = True  # another document is typed in: pause this one
                    running.stop.set()
            (self._idle if job.idle else self._waiting).append(job)
            self._cond.notify()
        for old in superseded:
            self.sender.send(RequestCancelled(old.request.request_id))

    def cancel(self, request_id: int) -> None:
        with self._cond:
            running = self._running
            if running is not None and running.request.request_id == request_id:
                running.preempted = False
                running.stop.set()
                return
            found = [j for j in self._queued() if j.request.request_id == request_id]
            if not found:
                return
            self._drop(found)
        self.sender.send(RequestCancelled(request_id))

    def next(self) -> Job | None:
        with self._cond:
            while not self._waiting and not self._idle and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            if self._waiting:
                self._running = max(self._waiting, key=lambda job: job.request.request_id)
                self._waiting.remove(self._running)
            else:
                self._running = self._idle.popleft()
            return self._running

    def finish(self, job: Job, stopped: bool) -> bool:
        """The job's run is over (`stopped`: before its end); True when that was a pause for a newer request of
        another document, and the job is queued again (no answer yet)."""
        with self._cond:
            self._running = None
            if not (stopped and job.preempted) or self._closed:
                return False
            resumed = Job(job.request)
            if job.idle:
                self._idle.appendleft(resumed)
            else:  # it runs again when no newer request waits
                self._waiting.append(resumed)
            self._cond.notify()
            return True

    def _queued(self) -> list[Job]:
        """Every job waiting to run, idle ones included (under the lock)."""
        return [*self._waiting, *self._idle]

    def _drop(self, jobs: list[Job]) -> None:
        """Take `jobs` out of the queues (under the lock); jobs compare by identity."""
        self._waiting = [j for j in self._waiting if j not in jobs]
        self._idle = deque(j for j in self._idle if j not in jobs)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            if self._running:
                self._running.stop.set()
            self._cond.notify_all()
            pending = self._queued()
            self._waiting, self._idle = [], deque()
        for job in pending:
            self.sender.send(RequestCancelled(job.request.request_id))


def receive(conn: Connection, queue: RequestQueue) -> None:
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break  # the server went away
        if isinstance(message, CompletionRequest | PrefillRequest):
            queue.add(message)
        elif isinstance(message, CancelRequest):
            queue.cancel(message.request_id)
        elif isinstance(message, Ping):
            queue.sender.send(Pong(message.seq, queue.steps))
        elif isinstance(message, Shutdown):
            break
    queue.close()


def load_engine(spec: ModelSpec, sender: Sender):
    """Load the model (reporting progress); None after telling the server why it failed."""
    import torch

    from codegen_lsp.inference.checkpoint.loading import load
    from codegen_lsp.inference.errors import ModelLoadError
    from codegen_lsp.inference.worker.engine import Engine

    try:
        loaded = load(spec, report=lambda message, fraction: sender.send(LoadProgress(message, fraction)))
        factory, static = None, False
        if loaded.device.type == "cuda" and spec.cuda_graphs:
            from codegen_lsp.inference.model.cuda_graphs import cuda_graph_decode_step

            factory, static = (lambda cache: cuda_graph_decode_step(loaded.model, cache)), True
        engine = Engine(
            loaded,
            spec.cache_slots,
            spec.cache_reuse,
            decode_step_factory=factory,
            static_cache=static,
            prompt_lookup=spec.prompt_lookup,
        )
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
    sender.send(
        ModelReady(
            spec.model,
            str(loaded.folder),
            str(loaded.device),
            loaded.dtype_name,
            loaded.config.n_positions,
            loaded.config.vocab_size,
            loaded.load_ms,
            loaded.warning,
        )
    )
    return engine


def serve_requests(engine, queue: RequestQueue, sender: Sender) -> None:
    import torch

    while (job := queue.next()) is not None:
        request, stop = job.request, job.stop
        queue.steps += 1

        def stop_now(stop: threading.Event = stop) -> bool:  # polled at every decode step and prefill chunk
            queue.steps += 1
            return stop.is_set()

        answer: object | None = None
        try:
            if not stop.is_set():
                run = engine.prefill if isinstance(request, PrefillRequest) else engine.generate
                result = run(request, stop_now, job.paused)
                stopped = result.candidates and result.candidates[0].stop_reason == StopReason.CANCELLED
                answer = RequestCancelled(request.request_id) if stop.is_set() or stopped else result
        except torch.OutOfMemoryError as exc:
            answer = RequestFailed(request.request_id, ErrorKind.OUT_OF_MEMORY, f"out of memory: {exc}")
        except (ValueError, TypeError) as exc:
            answer = RequestFailed(request.request_id, ErrorKind.BAD_REQUEST, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc(file=sys.stderr)
            answer = RequestFailed(request.request_id, ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}")
        answer = answer if answer is not None else RequestCancelled(request.request_id)
        if queue.finish(job, stopped=isinstance(answer, RequestCancelled)):
            continue  # paused for a newer request of another document: it runs again later
        sender.send(answer)


def worker_main(conn: Connection, spec: ModelSpec, log_level: str = "INFO") -> None:
    """The worker process's entry point (multiprocessing spawn)."""
    logging.basicConfig(
        stream=sys.stderr, level=log_level.upper(), format="codegen-lsp worker %(levelname)s %(message)s"
    )
    sender = Sender(conn)
    queue = RequestQueue(sender)
    threading.Thread(target=receive, args=(conn, queue), name="receiver", daemon=True).start()
    engine = load_engine(spec, sender)
    if engine is not None:
        serve_requests(engine, queue, sender)
    conn.close()
