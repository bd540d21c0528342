"""The model's life in the server: start, reload and stop the backend, and tell the person how loading goes.

The backend is the local worker process (`lsp_server.backends.local.EngineClient`), or a remote server
(`remote.OpenAIBackend`) when the `backend` setting says `openai`. The worker's events become work done progress
(loading), and `window/showMessage` for what the person must know (a failed load, a crashed worker, a fallback
to the bundled model, a remote server gone or back), once each.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from codegen_lsp.inference.protocol import LoadFailed, LoadProgress, ModelReady, WorkerEvent, WorkerExited
from codegen_lsp.lsp_server.backends import Backend, BackendError, BackendState
from codegen_lsp.lsp_server.status import State, loaded_model_name

if TYPE_CHECKING:
    from codegen_lsp.lsp_server.backends.local import EngineClient
    from codegen_lsp.lsp_server.server import CodegenLanguageServer

__all__ = ["Supervisor"]

log = logging.getLogger("codegen_lsp.server")

STOP_TIMEOUT_S = 10.0


class Supervisor:
    def __init__(self, ls: CodegenLanguageServer) -> None:
        self._ls = ls
        self.backend: Backend | None = None
        self._local: EngineClient | None = None  # the backend, when it is the local worker: reloaded in place
        self._lock = asyncio.Lock()
        self._progress: _ModelProgress | None = None
        self._progress_ids = itertools.count(1)

    async def start(self) -> None:
        async with self._lock:
            if self.backend is not None or self._ls.protocol._shutdown:
                return
            await self._start_backend()

    async def _start_backend(self) -> None:
        settings = self._ls.settings
        spec = settings.model_spec()
        if settings.backend.backend == "openai":
            await self._start_remote()
            return
        from codegen_lsp.lsp_server.backends.local import EngineClient

        local = EngineClient(spec, on_event=self.on_event, log_level=settings.server.log_level.upper())
        self.backend = self._local = local
        self._begin_progress(f"loading {spec.model}")
        await local.start()

    async def _start_remote(self) -> None:
        """The remote backend: only the tokenizer and config of `model` are read here (no weights, no torch)."""
        from codegen_lsp.lsp_server.backends.openai import OpenAIBackend, load_model_files

        settings = self._ls.settings
        remote = settings.remote_spec()
        self._begin_progress(f"connecting to {remote.url}")
        try:
            files = await asyncio.to_thread(load_model_files, settings.model.model, settings.model.revision)
        except BackendError as error:
            self._end_progress("the tokenizer could not be loaded")
            self._ls.status.set(State.ERROR, error.message)
            self._ls.show(
                types.MessageType.Error, f"codegen-lsp: {error.message}. No completions until the settings change."
            )
            return
        backend = self.backend = OpenAIBackend(remote, files, on_status=self._remote_status)
        await backend.start()
        if backend.state is BackendState.READY:
            self._end_progress(f"{backend.served_model} at {remote.url} ready")
            facts = {"model": backend.served_model, "device": remote.url, "dtype": None, "backend": "openai"}
            self._ls.status.set(State.READY, "ready", **facts)
        else:
            self._end_progress(f"{remote.url}: {backend.state.value}")

    def _remote_status(self, kind: str, message: str) -> None:
        """The remote backend went down, came back, or cannot be used: said once per change."""
        self._ls.status.remote_event(kind, message)
        if kind == "up":
            self._ls.show(types.MessageType.Info, f"codegen-lsp: {message}")
        elif kind == "down":
            self._ls.show(types.MessageType.Warning, f"codegen-lsp: {message}")
        else:
            self._ls.show(types.MessageType.Error, f"codegen-lsp: {message}. No completions until the settings change.")

    async def reload(self) -> None:
        async with self._lock:
            if self.backend is None or self._ls.protocol._shutdown:
                return
            settings = self._ls.settings
            spec = settings.model_spec()
            if self._local is not None and settings.backend.backend == "local":
                log.info("reloading the model: %s on %s (%s)", spec.model, spec.device, spec.dtype)
                self._end_progress("reloading")
                self._begin_progress(f"loading {spec.model}")
                await self._local.reload(spec)
                return
            await self._stop_backend()  # local <-> remote, or another remote: start afresh
            await self._start_backend()

    async def stop(self) -> None:
        async with self._lock:
            await self._stop_backend()

    async def _stop_backend(self) -> None:
        backend, self.backend, self._local = self.backend, None, None
        self._end_progress("stopped")
        self._ls.status.set(State.STOPPED, "stopped")
        if backend is None:
            return
        try:
            await asyncio.wait_for(backend.stop(), STOP_TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 - exiting anyway
            log.warning("stopping the backend: %s", error)

    def on_event(self, event: WorkerEvent) -> None:
        show = self._ls.show
        if isinstance(event, LoadProgress):
            log.debug("model: %s (%s)", event.message, event.fraction)
            if self._progress is None or self._progress.ended:
                self._begin_progress(event.message)
            if self._progress is not None:
                self._progress.report(event.message, event.fraction)
        elif isinstance(event, ModelReady):
            model = loaded_model_name(event.model, event.resolved)  # the bundled one, when it stood in
            message = f"{model} ready on {event.device} ({event.dtype}) in {event.load_ms / 1000:.1f} s"
            log.info("model: %s, from %s", message, event.resolved)
            self._end_progress(message)
            if event.warning:
                show(types.MessageType.Warning, f"codegen-lsp: {event.warning}", once=event.warning)
        elif isinstance(event, LoadFailed):
            self._end_progress("the model could not be loaded")
            model = self._ls.settings.model.model
            show(
                types.MessageType.Error,
                f"codegen-lsp: could not load the model {model!r} ({event.kind.value}): {event.message}. "
                "No completions until the settings change.",
            )
        elif isinstance(event, WorkerExited):
            log.error("model worker: %s", event.message)
            if not event.restarting:
                show(types.MessageType.Error, f"codegen-lsp: {event.message}")
            else:
                show(types.MessageType.Warning, f"codegen-lsp: {event.message}", once="worker-exited")
                self._begin_progress("restarting the model worker")
        self._ls.status.worker_event(event, self._ls.settings.model.model)  # after the progress: it has the fraction

    # -- progress ----------------------------------------------------------------------------------------------

    def _begin_progress(self, message: str) -> None:
        self._ls.status.loading(message, backend=self._ls.settings.backend.backend)
        if self._progress is not None and not self._progress.ended:
            self._progress.report(message, None)
            return
        log.info("model: %s", message)
        if self._ls.supports_progress and self._ls.initialized:
            token = f"codegen-lsp/model/{os.getpid()}/{next(self._progress_ids)}"
            self._progress = _ModelProgress(self._ls, token, "codegen-lsp", message)

    def _end_progress(self, message: str) -> None:
        if self._progress is not None:
            self._progress.end(message)
            self._progress = None


class _ModelProgress:
    """One server-initiated work done progress, over pygls' `work_done_progress`.

    pygls sends begin/report/end at once; the spec forbids sending them before the client has answered
    `window/workDoneProgress/create`, and loading reports arrive from the worker before it does. So they wait
    here (only the begin, the latest report and the end: nothing piles up) until the token exists.
    """

    def __init__(self, ls: CodegenLanguageServer, token: str, title: str, message: str) -> None:
        self._progress = ls.work_done_progress
        self.token = token
        self._state = "creating"  # creating | open | failed
        self._queue: list[Any] = [types.WorkDoneProgressBegin(title=title, message=message, percentage=0)]
        self._percentage = 0
        self.ended = False
        created = ls.protocol.send_request(
            types.WINDOW_WORK_DONE_PROGRESS_CREATE, types.WorkDoneProgressCreateParams(token=token)
        )
        created.add_done_callback(self._created)

    def _created(self, future) -> None:
        if future.cancelled() or future.exception() is not None:
            self._state = "failed"
            log.debug("the client refused progress token %s", self.token)
            return
        self._state = "open"
        queue, self._queue = self._queue, []
        for value in queue:
            self._send(value)

    def report(self, message: str, fraction: float | None) -> None:
        if self.ended:
            return
        if fraction is not None:
            self._percentage = max(self._percentage, min(100, int(fraction * 100)))
        value = types.WorkDoneProgressReport(message=message, percentage=self._percentage)
        if self._state == "creating":  # keep the begin and only the latest report
            self._queue = [v for v in self._queue if not isinstance(v, types.WorkDoneProgressReport)]
            self._queue.append(value)
        else:
            self._send(value)

    def end(self, message: str) -> None:
        if self.ended:
            return
        self.ended = True
        value = types.WorkDoneProgressEnd(message=message)
        if self._state == "creating":
            self._queue.append(value)
        else:
            self._send(value)

    def _send(self, value: Any) -> None:
        if self._state != "open":
            return
        if isinstance(value, types.WorkDoneProgressBegin):
            self._progress.begin(self.token, value)
        elif isinstance(value, types.WorkDoneProgressReport):
            self._progress.report(self.token, value)
        else:
            self._progress.end(self.token, value)
            self._progress.tokens.pop(self.token, None)  # pygls keeps a future per token begun: drop ours
