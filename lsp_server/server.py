"""The language server: thin pygls 2 handlers over the document store, the completion service and the worker.

Protocol choices (see also `service.py` for supersession and cancellation, `completion.py` for item ranges):
- positions: utf-8 when the client offers it (whatever its order of preference), else utf-16;
- text sync: incremental, kept by `documents.DocumentStore` (pygls' workspace gets no text: see documents.py);
- `textDocument/inlineCompletion` (LSP 3.18): one item per candidate, an empty range at the cursor;
- `textDocument/completion`: the fallback for clients without inline completion (eglot, Neovim < 0.12),
  advertised only to them. A client that declares inline completion would otherwise ask the model twice per
  keystroke, each request superseding the other (it gets no completion items if it asks anyway);
- only Python documents (languageId "python") are completed; others are answered with no items;
- the model loads in a worker process started after `initialized`, shown with work done progress when the
  client supports it; failures with window/showMessage; logs with window/logMessage and stderr;
- malformed input is answered whenever it names a request id (see transport.py), and never stops the server.

The server process never imports torch: only the worker does.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from codegen_lsp.inference.protocol import LoadFailed, LoadProgress, ModelReady, WorkerEvent, WorkerExited

from .completion import completion_edit, is_supported_language
from .documents import Change, DocumentStore, column_to_units
from .logging_setup import CLIENT_HANDLER, set_level
from .service import CompletionService, Outcome
from .settings import SECTION_NAMES, Settings, needs_reload, parse_settings, to_wire
from .transport import Frame, MessageReader, recover_id

if TYPE_CHECKING:
    from codegen_lsp.inference.client import EngineClient

__all__ = ["CodegenLanguageServer", "DEBUG_ENV", "VERSION", "server"]

log = logging.getLogger("codegen_lsp.server")

VERSION = "0.1.0"
DEBUG_ENV = "CODEGEN_LSP_DEBUG"  # "1": register the debug commands (tests read the server's document text)
STALL_S = 0.25  # no input for this long: bad framing still in the buffer is reported (transport.py)
CONFIGURATION_TIMEOUT_S = 2.0
STOP_TIMEOUT_S = 10.0
COMPLETION_TRIGGER_CHARACTERS = [".", "(", "[", "{", ",", "=", ":", " "]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602


class CodegenProtocol(LanguageServerProtocol):
    """pygls' protocol with our document store, position encoding preference, exit code and error answers."""

    _server: CodegenLanguageServer

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams):
        general = params.capabilities.general
        offered = list(general.position_encodings or []) if general is not None else []
        if types.PositionEncodingKind.Utf8 in offered:  # the issue asks for utf-8 whenever offered
            general.position_encodings = [types.PositionEncodingKind.Utf8]  # type: ignore[union-attr]
        elif offered:
            general.position_encodings = [types.PositionEncodingKind.Utf16]  # type: ignore[union-attr]
        result = yield from super().lsp_initialize(params)
        text_document = params.capabilities.text_document
        if text_document is not None and text_document.inline_completion is not None:
            # Inline completion only (as Tabby's agent does): completion requests on every keystroke
            # would ask the model a second time, each superseding the other.
            result.capabilities.completion_provider = None
        encoding = result.capabilities.position_encoding or types.PositionEncodingKind.Utf16
        self._server.encoding = str(getattr(encoding, "value", encoding))
        return result

    # Text goes to our store only (user handlers); pygls' workspace keeps none.
    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args):
        if (handler := self.fm.features.get(types.EXIT)) is not None:
            yield handler, args, None
        self._server.finish(0 if self._shutdown else 1)

    # -- raw messages ----------------------------------------------------------------------------------------

    def handle_frame(self, frame: Frame) -> None:
        if frame.problem is not None:
            request_id = recover_id(frame.body) if frame.body else None
            log.warning(
                "malformed input: %s (%d bytes)%s",
                frame.problem,
                len(frame.body),
                f"; answering request {request_id!r}" if request_id is not None else "",
            )
            if request_id is not None:
                self.send_error(request_id, PARSE_ERROR, f"Malformed message: {frame.problem}")
            return
        try:
            raw = json.loads(frame.body)
        except (ValueError, RecursionError) as error:
            request_id = recover_id(frame.body)
            log.warning("a message that is not JSON (%s), %d bytes", error, len(frame.body))
            self.send_error(request_id, PARSE_ERROR, f"Parse error: {error}")
            return
        self.handle_raw(raw)

    def handle_raw(self, raw: Any) -> None:
        if not isinstance(raw, dict) or raw.get("jsonrpc") != "2.0":
            request_id = raw.get("id") if isinstance(raw, dict) else None
            self.send_error(
                _valid_id(request_id), INVALID_REQUEST, "Invalid request: not a JSON-RPC 2.0 object"
            )
            return
        method = raw.get("method")
        is_request = "id" in raw and "method" in raw
        if "method" in raw and not isinstance(method, str):
            self.send_error(
                _valid_id(raw.get("id")), INVALID_REQUEST, "Invalid request: method is not a string"
            )
            return
        if is_request and _valid_id(raw["id"]) is None:
            self.send_error(None, INVALID_REQUEST, f"Invalid request: bad id {raw['id']!r}")
            return
        if self._shutdown and method != types.EXIT:
            if is_request:
                self.send_error(raw["id"], INVALID_REQUEST, "The server is shut down")
            return
        try:
            message = self.structure_message(raw)
        except Exception as error:  # noqa: BLE001 - params that do not fit the method's types
            detail = _describe_structure_error(error)
            if is_request:
                log.warning("request %r %s: invalid params: %s", raw["id"], method, detail)
                self.send_error(raw["id"], INVALID_PARAMS, f"Invalid params for {method}: {detail}")
            else:
                log.warning(
                    "ignored %s %s: invalid params: %s",
                    "notification" if method else "message",
                    method or "",
                    detail,
                )
            return
        try:
            self.handle_message(message)
        except Exception:  # noqa: BLE001 - one message must never end the session
            log.exception("failed to handle %s", method)
            if is_request:
                self.send_error(raw["id"], -32603, f"Internal error handling {method}")

    def send_error(self, request_id: int | str | None, code: int, message: str) -> None:
        # A plain dict: the converter would drop a None id, and JSON-RPC wants "id": null there.
        self._send_data({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})


def _valid_id(value: object) -> int | str | None:
    return value if isinstance(value, int | str) and not isinstance(value, bool) else None


def _describe_structure_error(error: BaseException) -> str:
    cause = error.__cause__ or error
    try:
        from cattrs import transform_error

        lines = transform_error(cause)  # type: ignore[arg-type]
        if lines:
            return "; ".join(lines)
    except Exception:  # noqa: BLE001
        pass
    return f"{type(cause).__name__}: {cause}"


class _Progress:
    """One server-initiated work done progress: begin/report/end queued until the client created the token."""

    def __init__(self, server: CodegenLanguageServer, token: str, title: str, message: str) -> None:
        self._server = server
        self.token = token
        self._state = "creating"  # creating | open | failed
        self._queue: list[Any] = [types.WorkDoneProgressBegin(title=title, message=message, percentage=0)]
        self._percentage = 0
        self.ended = False
        future = server.protocol.send_request(
            types.WINDOW_WORK_DONE_PROGRESS_CREATE, types.WorkDoneProgressCreateParams(token=token)
        )
        future.add_done_callback(self._created)

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
        if self._state == "open":
            self._server.protocol.notify(types.PROGRESS, types.ProgressParams(token=self.token, value=value))


class CodegenLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("codegen-lsp", VERSION, protocol_cls=CodegenProtocol, max_workers=2)
        self.documents = DocumentStore()
        self.settings = Settings()
        self.encoding = "utf-16"
        self.engine: EngineClient | None = None
        self.service = CompletionService(lambda: self.engine)
        self.exit_code: int | None = None
        self._finished: asyncio.Future[int] | None = None
        self._progress: _Progress | None = None
        self._progress_ids = itertools.count(1)
        self._shown: set[str] = set()
        self._engine_lock: asyncio.Lock | None = None
        self._initialized = False
        self.stopping: asyncio.Future | None = None  # the worker stopping after `shutdown`
        self.started_at = time.monotonic()

    # -- client facts --------------------------------------------------------------------------------------

    def _capability(self, path: str) -> Any:
        value: Any = getattr(self.protocol, "client_capabilities", None)
        for name in path.split("."):
            value = getattr(value, name, None) if value is not None else None
        return value

    @property
    def supports_progress(self) -> bool:
        return bool(self._capability("window.work_done_progress"))

    @property
    def supports_configuration(self) -> bool:
        return bool(self._capability("workspace.configuration"))

    @property
    def supports_inline_completion(self) -> bool:
        return self._capability("text_document.inline_completion") is not None

    # -- messages to the person ----------------------------------------------------------------------------

    def show(self, kind: types.MessageType, message: str, *, once: str | None = None) -> None:
        """window/showMessage, plus the same line on stderr (logs)."""
        if once is not None:
            if once in self._shown:
                return
            self._shown.add(once)
        level = {types.MessageType.Error: logging.ERROR, types.MessageType.Warning: logging.WARNING}
        log.log(level.get(kind, logging.INFO), "%s", message)
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def send_log(self, level: int, text: str) -> None:
        kind = (
            types.MessageType.Error
            if level >= logging.ERROR
            else types.MessageType.Warning
            if level >= logging.WARNING
            else types.MessageType.Info
            if level >= logging.INFO
            else types.MessageType.Log
        )
        self.window_log_message(types.LogMessageParams(type=kind, message=text))

    def report_server_error(self, error: Exception, source: Any) -> None:
        # pygls would show every internal error in a popup; a log line is enough (requests are answered).
        log.error("internal error (%s): %s", getattr(source, "__name__", source), error)

    # -- settings ------------------------------------------------------------------------------------------

    def apply_settings(self, new: Settings, warnings: list[str], source: str) -> None:
        if warnings:
            self.show(types.MessageType.Warning, f"codegen-lsp settings ({source}): " + " ".join(warnings))
        old, self.settings = self.settings, new
        set_level(new.server.log_level)
        if old != new:
            log.info("settings from %s: %s", source, json.dumps(to_wire(new)))
            self.service.reset()
        if self.engine is not None and needs_reload(old, new):
            asyncio.ensure_future(self.reload_engine())

    async def pull_configuration(self) -> None:
        """workspace/configuration for our section: VS Code sends empty didChangeConfiguration payloads."""
        if not self.supports_configuration:
            return
        try:
            result = await asyncio.wait_for(
                self.workspace_configuration_async(
                    types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION_NAMES[0])])
                ),
                CONFIGURATION_TIMEOUT_S,
            )
        except Exception as error:  # noqa: BLE001 - a client that cannot answer keeps the settings we have
            log.info("workspace/configuration gave no settings: %s", error)
            return
        section = result[0] if isinstance(result, list | tuple) and result else None
        if section is None:
            return
        new, warnings = parse_settings(section, self.settings)
        self.apply_settings(new, warnings, "workspace/configuration")

    # -- the engine ----------------------------------------------------------------------------------------

    def _lock(self) -> asyncio.Lock:
        if self._engine_lock is None:
            self._engine_lock = asyncio.Lock()
        return self._engine_lock

    async def start_engine(self) -> None:
        from codegen_lsp.inference.client import EngineClient

        async with self._lock():
            if self.engine is not None or self.protocol._shutdown:
                return
            spec = self.settings.model_spec()
            self.engine = EngineClient(
                spec, on_event=self.on_engine_event, log_level=self.settings.server.log_level.upper()
            )
            self.begin_progress(f"loading {spec.model}")
            await self.engine.start()

    async def reload_engine(self) -> None:
        async with self._lock():
            if self.engine is None or self.protocol._shutdown:
                return
            spec = self.settings.model_spec()
            log.info("reloading the model: %s on %s (%s)", spec.model, spec.device, spec.dtype)
            self._end_progress("reloading")
            self.begin_progress(f"loading {spec.model}")
            await self.engine.reload(spec)

    async def stop_engine(self) -> None:
        async with self._lock():
            engine, self.engine = self.engine, None
            self._end_progress("stopped")
            if engine is None:
                return
            try:
                await asyncio.wait_for(engine.stop(), STOP_TIMEOUT_S)
            except Exception as error:  # noqa: BLE001 - exiting anyway
                log.warning("stopping the worker: %s", error)

    def begin_progress(self, message: str) -> None:
        if self._progress is not None and not self._progress.ended:
            self._progress.report(message, None)
            return
        log.info("model: %s", message)
        if self.supports_progress and self._initialized:
            token = f"codegen-lsp/model/{os.getpid()}/{next(self._progress_ids)}"
            self._progress = _Progress(self, token, "codegen-lsp", message)

    def _end_progress(self, message: str) -> None:
        if self._progress is not None:
            self._progress.end(message)
            self._progress = None

    def on_engine_event(self, event: WorkerEvent) -> None:
        if isinstance(event, LoadProgress):
            log.debug("model: %s (%s)", event.message, event.fraction)
            if self._progress is None or self._progress.ended:
                self.begin_progress(event.message)
            if self._progress is not None:
                self._progress.report(event.message, event.fraction)
        elif isinstance(event, ModelReady):
            message = f"{event.model} ready on {event.device} ({event.dtype}) in {event.load_ms / 1000:.1f} s"
            log.info("model: %s, from %s", message, event.resolved)
            self._end_progress(message)
            if event.warning:
                self.show(types.MessageType.Warning, f"codegen-lsp: {event.warning}", once=event.warning)
        elif isinstance(event, LoadFailed):
            self._end_progress("the model could not be loaded")
            model = self.engine.spec.model if self.engine is not None else self.settings.model.model
            self.show(
                types.MessageType.Error,
                f"codegen-lsp: could not load the model {model!r} ({event.kind.value}): {event.message}. "
                "No completions until the settings change.",
            )
        elif isinstance(event, WorkerExited):
            log.error("model worker: %s", event.message)
            if not event.restarting:
                self.show(types.MessageType.Error, f"codegen-lsp: {event.message}")
            else:
                self.show(types.MessageType.Warning, f"codegen-lsp: {event.message}", once="worker-exited")
                self.begin_progress("restarting the model worker")

    # -- completions ---------------------------------------------------------------------------------------

    async def complete(
        self, uri: str, position: types.Position, invoked: bool, kind: str
    ) -> tuple[Outcome, tuple[int, int] | None]:
        """The outcome and the cursor (line, character in the session's units, clamped to its line) as the
        request saw it: the document may change while the worker runs."""
        document = self.documents.get(uri)
        if document is None:
            log.info("%s request for %s, which is not open: no items", kind, uri)
            return Outcome([], source="skipped", detail="unknown document"), None
        if position.line >= document.line_count:
            log.info(
                "%s request at line %d of %s, which has %d lines: no items",
                kind,
                position.line,
                uri,
                document.line_count,
            )
            return Outcome([], source="skipped", detail="position past the end"), None
        if not invoked and document.last_edit_deleted:
            # Peers' users complain of suggestions popping up on backspace: only typing asks automatically.
            log.debug("%s request for %s right after a deletion: no items", kind, uri)
            self.service.supersede(uri)  # what was asked before the deletion is moot too
            return Outcome([], source="skipped", detail="after a deletion"), None
        offset = document.offset_at(position.line, position.character, self.encoding)
        cursor = document.position_at(offset, self.encoding)
        request_id = self.service.next_id()
        name = PurePosixPath(uri).name or uri
        where = f"{name}:{position.line + 1}:{position.character + 1}"
        tag = f"#{request_id} {kind} {where} (lsp {self.protocol.msg_id})"
        outcome = await self.service.complete(
            request_id=request_id,
            uri=uri,
            text=document.text,
            offset=offset,
            language_id=document.language_id,
            settings=self.settings,
            invoked=invoked,
            tag=tag,
        )
        return outcome, cursor

    # -- running -------------------------------------------------------------------------------------------

    def finish(self, code: int) -> None:
        self.exit_code = code
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(code)

    def start_io(self, stdin=None, stdout=None) -> int:  # type: ignore[override]
        """Serve on stdin/stdout; returns the exit code. Stray prints from any library go to stderr."""
        protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        sys.stdout = sys.stderr
        self.protocol.set_writer(StdoutWriter(protocol_out))
        in_fd = sys.stdin.fileno()
        return asyncio.run(self._serve_stdin(in_fd))

    async def _serve_stdin(self, in_fd: int) -> int:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes] = asyncio.Queue()

        def pump() -> None:
            while True:
                try:
                    data = os.read(in_fd, 1 << 16)
                except OSError:
                    data = b""
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, data)
                except RuntimeError:
                    return  # the loop is closed
                if not data:
                    return

        threading.Thread(target=pump, name="stdin-reader", daemon=True).start()
        return await self.serve(queue.get)

    def start_tcp(self, host: str, port: int) -> int:  # type: ignore[override]
        return asyncio.run(self._serve_tcp(host, port))

    async def _serve_tcp(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        connection: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = loop.create_future()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if connection.done():  # one client per server process
                writer.close()
                return
            connection.set_result((reader, writer))

        listener = await asyncio.start_server(accept, host, port)
        bound = listener.sockets[0].getsockname()
        print(f"codegen-lsp listening on {bound[0]}:{bound[1]}", file=sys.stderr, flush=True)
        reader, writer = await connection
        listener.close()
        self.protocol.set_writer(writer)  # type: ignore[arg-type]
        code = await self.serve(lambda: reader.read(1 << 16))
        writer.close()
        return code

    async def serve(self, read: Callable[[], Awaitable[bytes]]) -> int:
        """Read, frame and dispatch messages until `exit` or the end of the input; returns the exit code."""
        loop = asyncio.get_running_loop()
        self._finished = loop.create_future()
        CLIENT_HANDLER.connect(self._log_to_client, loop.call_soon_threadsafe)
        reader = MessageReader()
        pending_read: asyncio.Future[bytes] | None = None
        try:
            while not self._finished.done():
                if pending_read is None:
                    pending_read = asyncio.ensure_future(read())
                done, _ = await asyncio.wait(
                    {pending_read, self._finished},
                    timeout=STALL_S if reader.pending else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if self._finished.done():
                    break
                if pending_read in done:
                    data = pending_read.result()
                    pending_read = None
                    if not data:
                        log.info("the client closed the connection")
                        self.finish(0 if self.protocol._shutdown else 1)
                        break
                    frames = reader.feed(data)
                else:
                    frames = reader.flush_stalled()
                for frame in frames:
                    self.protocol.handle_frame(frame)
        finally:
            if pending_read is not None:
                pending_read.cancel()
            CLIENT_HANDLER.disconnect()
            await self.stop_engine()
        return self._finished.result() if self._finished.done() else 1

    def _log_to_client(self, level: int, text: str) -> None:
        if self._initialized and self.protocol.writer is not None:
            self.send_log(level, text)


server = CodegenLanguageServer()


# -- life cycle ----------------------------------------------------------------------------------------------


@server.feature(types.INITIALIZE)
def initialize(ls: CodegenLanguageServer, params: types.InitializeParams) -> None:
    settings, warnings = parse_settings(params.initialization_options)
    ls.apply_settings(settings, warnings, "initializationOptions")
    client = params.client_info.name if params.client_info else "an unnamed client"
    log.info("initialize from %s (pid %s)", client, params.process_id)


@server.feature(types.INITIALIZED)
async def initialized(ls: CodegenLanguageServer, params: types.InitializedParams) -> None:
    ls._initialized = True
    log.info(
        "position encoding %s; progress %s; inline completion %s",
        ls.encoding,
        ls.supports_progress,
        ls.supports_inline_completion,
    )
    await ls.pull_configuration()
    await ls.start_engine()


@server.feature(types.SHUTDOWN)
def shutdown(ls: CodegenLanguageServer, params: None) -> None:
    """Answered at once (eglot waits only 1.5 s); the worker stops in the background and `exit` waits for it."""
    log.info("shutdown")
    ls.stopping = asyncio.ensure_future(ls.stop_engine())


@server.feature(types.EXIT)
async def exit_(ls: CodegenLanguageServer, params: None) -> None:
    await ls.stop_engine()


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def did_change_configuration(
    ls: CodegenLanguageServer, params: types.DidChangeConfigurationParams
) -> None:
    payload = params.settings
    if _is_empty(payload) and ls.supports_configuration:
        await ls.pull_configuration()
        return
    new, warnings = parse_settings(payload, ls.settings)
    ls.apply_settings(new, warnings, "workspace/didChangeConfiguration")


def _is_empty(payload: Any) -> bool:
    if payload is None or payload == {}:
        return True
    if isinstance(payload, dict):
        for name in SECTION_NAMES:
            if name in payload:
                return not payload[name]
    return False


# -- documents -----------------------------------------------------------------------------------------------


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: CodegenLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
    doc = params.text_document
    ls.documents.open(doc.uri, doc.text, doc.language_id, doc.version)
    log.debug("opened %s (%s, %d characters)", doc.uri, doc.language_id, len(doc.text))
    if not is_supported_language(doc.language_id):
        log.info(
            "%s is %s, not Python: it gets no completions (CodeGen-mono knows Python only)",
            doc.uri,
            doc.language_id,
        )


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: CodegenLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
    changes = []
    for change in params.content_changes:
        if isinstance(change, types.TextDocumentContentChangePartial):
            r = change.range
            changes.append(
                Change(change.text, (r.start.line, r.start.character, r.end.line, r.end.character))
            )
        else:
            changes.append(Change(change.text))
    uri = params.text_document.uri
    if not ls.documents.change(uri, changes, params.text_document.version, ls.encoding):
        log.warning("didChange for %s, which is not open: ignored", uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: CodegenLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.documents.close(params.text_document.uri)
    ls.service.forget(params.text_document.uri)


# -- completions ---------------------------------------------------------------------------------------------


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def inline_completion(
    ls: CodegenLanguageServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
    outcome, cursor = await ls.complete(params.text_document.uri, params.position, invoked, "inline")
    if cursor is None or not outcome.items:
        return types.InlineCompletionList(items=[])
    at = types.Position(line=cursor[0], character=cursor[1])
    empty = types.Range(start=at, end=at)  # items are inserted at the cursor (completion.py)
    return types.InlineCompletionList(
        items=[types.InlineCompletionItem(insert_text=text, range=empty) for text in outcome.items]
    )


@server.feature(
    types.TEXT_DOCUMENT_COMPLETION,
    types.CompletionOptions(trigger_characters=COMPLETION_TRIGGER_CHARACTERS, resolve_provider=False),
)
async def completion(ls: CodegenLanguageServer, params: types.CompletionParams) -> types.CompletionList:
    if ls.supports_inline_completion:
        return types.CompletionList(is_incomplete=False, items=[])
    invoked = params.context is None or params.context.trigger_kind == types.CompletionTriggerKind.Invoked
    outcome, cursor = await ls.complete(params.text_document.uri, params.position, invoked, "completion")
    if cursor is None or not outcome.items or outcome.prepared is None:
        return types.CompletionList(is_incomplete=True, items=[])
    end = types.Position(line=cursor[0], character=cursor[1])
    items = []
    for index, text in enumerate(outcome.items):
        edit = completion_edit(outcome.prepared.ctx.line_prefix, text)
        start = types.Position(
            line=cursor[0], character=cursor[1] - column_to_units(edit.word, len(edit.word), ls.encoding)
        )
        items.append(
            types.CompletionItem(
                label=edit.label,
                kind=types.CompletionItemKind.Text,
                detail="codegen-lsp",
                documentation=_documentation(ls, edit.new_text),
                sort_text=f"{index:04d}",
                filter_text=edit.new_text.split("\n", 1)[0] or edit.word,
                preselect=index == 0,
                insert_text_format=types.InsertTextFormat.PlainText,
                text_edit=types.TextEdit(range=types.Range(start=start, end=end), new_text=edit.new_text),
            )
        )
    # Incomplete: the items depend on every character typed, so the client must ask again, not filter.
    return types.CompletionList(is_incomplete=True, items=items)


def _documentation(ls: CodegenLanguageServer, text: str) -> str | types.MarkupContent:
    """The whole completion (the label shows one line): markdown only where the client reads it."""
    formats = ls._capability("text_document.completion.completion_item.documentation_format") or []
    if types.MarkupKind.Markdown in formats:
        return types.MarkupContent(kind=types.MarkupKind.Markdown, value=f"```python\n{text}\n```")
    return text


# -- debugging (CODEGEN_LSP_DEBUG=1 only: not part of the advertised surface otherwise) ----------------------

if os.environ.get(DEBUG_ENV, "") not in ("", "0"):

    @server.command("codegenLsp.debugDocumentText")
    def debug_document_text(ls: CodegenLanguageServer, uri: str) -> str | None:
        document = ls.documents.get(uri)
        return None if document is None else document.text

    @server.command("codegenLsp.debugState")
    def debug_state(ls: CodegenLanguageServer) -> dict[str, Any]:
        engine = ls.engine
        return {
            "encoding": ls.encoding,
            "engine": None if engine is None else engine.state,
            "ready": None if engine is None or engine.ready_info is None else engine.ready_info.model,
            "stats": dict(ls.service.stats),
            "settings": to_wire(ls.settings),
            "documents": len(ls.documents),
            "modules": sorted(m for m in ("torch", "transformers", "numpy") if m in sys.modules),
        }
