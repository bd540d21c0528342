"""The model's life in the server: start, reload and stop the backend, and tell the person how loading goes.

The backend is the local worker process (`lsp_server.backends.local.EngineClient`), or a remote server
(`lsp_server.backends.openai.OpenAIBackend`) when the `backend` setting says `openai`. The worker's events become
work done progress (loading), and `window/showMessage` for what the person must know (a failed load, a crashed
worker, a fallback to the bundled model, a remote server gone or back), once each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from lsprotocol import types

from codegen_lsp.inference.protocol import LoadFailed, LoadProgress, ModelReady, WorkerEvent, WorkerExited
from codegen_lsp.lsp_server.backends import Backend, BackendError, BackendState
from codegen_lsp.lsp_server.backends.openai_http import redact
from codegen_lsp.lsp_server.settings import Settings
from codegen_lsp.lsp_server.status import State, StatusBoard, loaded_model_name

if TYPE_CHECKING:
    from codegen_lsp.lsp_server.backends.local import EngineClient
    from codegen_lsp.lsp_server.backends.openai import OpenAIBackend

__all__ = ["Supervisor"]

log = logging.getLogger("codegen_lsp.server")

STOP_TIMEOUT_S = 10.0


class Progress(Protocol):
    """A work done progress in the client (progress.ClientProgress)."""

    ended: bool

    def report(self, message: str, fraction: float | None) -> None: ...

    def end(self, message: str) -> None: ...


class Show(Protocol):
    """window/showMessage (and a log line); `once`: a key shown at most once per session."""

    def __call__(self, kind: types.MessageType, message: str, *, once: str | None = None) -> None: ...


class Supervisor:
    """Knows the server only through narrow callbacks: the settings now, how to tell the person, whether the
    session is shutting down, how to begin a progress in the client (None: it shows none), and the status."""

    def __init__(
        self,
        settings: Callable[[], Settings],
        show: Show,
        shutting_down: Callable[[], bool],
        begin_progress: Callable[[str], Progress | None],
        status: StatusBoard,
    ) -> None:
        self._settings = settings
        self._show = show
        self._shutting_down = shutting_down
        self._new_progress = begin_progress
        self._status = status
        self.backend: Backend | None = None
        self._local: EngineClient | None = None  # the backend, when it is the local worker: reloaded in place
        self._lock = asyncio.Lock()
        self._progress: Progress | None = None
        self._connecting: asyncio.Future | None = None  # the remote backend's first connection, outside the lock
        self._reload_wanted = self._reloading = False

    async def start(self) -> None:
        async with self._lock:
            if self.backend is not None or self._shutting_down():
                return
            await self._start_backend()

    async def _start_backend(self) -> None:
        settings = self._settings()
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

        settings = self._settings()
        remote = settings.remote_spec()
        shown = redact(remote.url)  # no password from the URL in progress, status or messages
        self._begin_progress(f"connecting to {shown}")
        try:
            files = await asyncio.to_thread(load_model_files, settings.model.model, settings.model.revision)
        except BackendError as error:
            self._end_progress("the tokenizer could not be loaded")
            self._status.set(State.ERROR, error.message)
            self._show(
                types.MessageType.Error, f"codegen-lsp: {error.message}. No completions until the settings change."
            )
            return
        backend = self.backend = OpenAIBackend(remote, files, on_status=self._remote_status)
        # Outside the lock: a server that stalls (within backendTimeoutMs) holds no settings change back.
        self._connecting = asyncio.ensure_future(self._connect_remote(backend, shown))

    async def _connect_remote(self, backend: OpenAIBackend, shown: str) -> None:
        await backend.start()
        if self.backend is not backend:
            return  # stopped or replaced meanwhile
        if backend.state is BackendState.READY:
            self._end_progress(f"{backend.served_model} at {shown} ready")
            facts = {"model": backend.served_model, "device": shown, "dtype": None, "backend": "openai"}
            self._status.set(State.READY, "ready", **facts)
        else:
            self._end_progress(f"{shown}: {backend.state.value}")

    def _remote_status(self, kind: str, message: str) -> None:
        """The remote backend went down, came back, or cannot be used: said once per change."""
        self._status.remote_event(kind, message)
        if kind == "up":
            self._show(types.MessageType.Info, f"codegen-lsp: {message}")
        elif kind == "down":
            self._show(types.MessageType.Warning, f"codegen-lsp: {message}")
        else:
            self._show(types.MessageType.Error, f"codegen-lsp: {message}. No completions until the settings change.")

    async def reload(self) -> None:
        """Apply the newest settings. Changes that come while a reload runs are coalesced: that reload goes round
        once more with the settings as they are then (40 changes in 2 s: two reloads, not 40 workers)."""
        self._reload_wanted = True
        if self._reloading:
            return
        self._reloading = True
        try:
            while self._reload_wanted:
                self._reload_wanted = False
                await self._reload_once()
        finally:
            self._reloading = False

    async def _reload_once(self) -> None:
        async with self._lock:
            if self.backend is None or self._shutting_down():
                return
            settings = self._settings()
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
        if self._connecting is not None:
            self._connecting.cancel()  # a connection in progress is superseded
            self._connecting = None
        self._end_progress("stopped")
        self._status.set(State.STOPPED, "stopped")
        if backend is None:
            return
        try:
            await asyncio.wait_for(backend.stop(), STOP_TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 - exiting anyway
            log.warning("stopping the backend: %s", error)

    def on_event(self, event: WorkerEvent) -> None:
        show = self._show
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
            model = self._settings().model.model
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
        self._status.worker_event(event, self._settings().model.model)  # after the progress: it has the fraction

    # -- progress ----------------------------------------------------------------------------------------------

    def _begin_progress(self, message: str) -> None:
        self._status.loading(message, backend=self._settings().backend.backend)
        if self._progress is not None and not self._progress.ended:
            self._progress.report(message, None)
            return
        log.info("model: %s", message)
        self._progress = self._new_progress(message)

    def _end_progress(self, message: str) -> None:
        if self._progress is not None:
            self._progress.end(message)
            self._progress = None
