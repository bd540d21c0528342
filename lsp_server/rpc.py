"""JSON-RPC over a byte stream: our read loop, framing and error answers around pygls' protocol.

pygls reads its own input and drops what it cannot parse. We keep our own read loop and framing
(`transport.py`) because malformed input must be ANSWERED whenever it names a request id (a parse error,
a bad header, params that do not fit the method), and must never stop the server; pygls' reader has no hook
for that. Everything after framing is pygls': structuring messages, dispatch to the handlers, cancellation.

The life cycle is the specification's state machine, enforced here before pygls sees a message:
- before `initialize` succeeds: requests get ServerNotInitialized (-32002), notifications are dropped, except
  `exit` (exit code 1);
- `initialize` once: a second one gets InvalidRequest and changes nothing;
- after `shutdown`: requests get InvalidRequest, notifications are dropped, except `exit` (exit code 0).

This module is the ONE place that reaches pygls' private names (`_shutdown`, `_request_futures`, `_server`,
`_execute_handler`, `_handle_cancel_notification`, `_send_data`): the rest of the server uses pygls' public API and
what is defined here (`shut_down`, `handlers_in_flight`, `send_error`). `PYGLS_VERSIONS` is the range it was written
and tested for; pyproject.toml declares the same, and tests/test_pygls_adapter.py checks both, and that no other
module reaches pygls' private names. A pygls upgrade touches this file.

Two pygls 2.1 habits are corrected in `CodegenProtocol`: it keeps a future per notification handled by a
coroutine, thread or generator (our document handlers) in `_request_futures` and never drops it (memory grew
with every keystroke); and it warns about every `$/cancelRequest` for a request already answered, which
editors send all the time (the answer and the cancel cross on the wire).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import attrs
from lsprotocol import types
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from codegen_lsp.lsp_server.transport import Frame, MessageReader, recover_id

__all__ = ["PYGLS_VERSIONS", "CodegenProtocol", "StreamServer"]

PYGLS_VERSIONS = ">=2.1,<2.2"  # the pygls releases whose private names this module was written against

OWN_METHOD_PREFIX = "codegenLsp/"  # our own requests and notifications (status, alternatives)

log = logging.getLogger("codegen_lsp.server")

STALL_S = 0.25  # no input for this long: bad framing still in the buffer is reported (transport.py)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_NOT_INITIALIZED = -32002


class CodegenProtocol(LanguageServerProtocol):
    """pygls' protocol with our document store, position encoding preference, exit code and error answers."""

    _server: StreamServer
    initialize_done = False  # `initialize` was answered with a result: the session may begin

    def __init__(self, server: Any, converter: Any) -> None:
        super().__init__(server, converter)
        # lsprotocol's converter coerces scalars: `"text": null` became the text "None", a version of 1.5 became
        # 1, "7" a line number. A value of the wrong JSON type is invalid params, as for any other field.
        for kind in (str, int, float, bool):
            converter.register_structure_hook(kind, partial(_strict_scalar, kind))
        # languageId is `LanguageKind | str`, whose hook let a number through (then `.strip()` raised later).
        language_id = attrs.fields(types.TextDocumentItem).language_id.type
        converter.register_structure_hook(language_id, partial(_strict_scalar, str))

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
        self.initialize_done = True
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

    @lsp_method(types.SHUTDOWN)
    def lsp_shutdown(self, *args):
        """pygls' own walks `_request_futures` while cancelling them, and a cancelled handler's callback can drop
        its entry at once ("dictionary changed size during iteration", seen in code-server): walk a copy."""
        if (handler := self.fm.features.get(types.SHUTDOWN)) is not None:
            yield handler, args, None
        current_id = self.msg_id
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current_id and not future.done():
                future.cancel()
        self._shutdown = True

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args):
        if (handler := self.fm.features.get(types.EXIT)) is not None:
            yield handler, args, None
        self._server.finish(0 if self._shutdown else 1)

    # -- what the rest of the server may ask -----------------------------------------------------------------

    @property
    def shut_down(self) -> bool:
        """`shutdown` was received: only `exit` is handled from now on."""
        return self._shutdown

    def handlers_in_flight(self) -> int:
        """Handler futures pygls holds now (requests being answered; notifications are dropped when done)."""
        return len(self._request_futures)

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
            if request_id is not None or frame.announced:  # a body that is not JSON: JSON-RPC's null id
                self.send_error(request_id, PARSE_ERROR, f"Malformed message: {frame.problem}")
            return
        self.handle_raw(frame.message)

    def handle_raw(self, raw: Any) -> None:
        if not isinstance(raw, dict) or raw.get("jsonrpc") != "2.0":
            request_id = raw.get("id") if isinstance(raw, dict) else None
            self.send_error(_valid_id(request_id), INVALID_REQUEST, "Invalid request: not a JSON-RPC 2.0 object")
            return
        method = raw.get("method")
        is_request = "id" in raw and "method" in raw
        if "method" in raw and not isinstance(method, str):
            self.send_error(_valid_id(raw.get("id")), INVALID_REQUEST, "Invalid request: method is not a string")
            return
        if is_request and _valid_id(raw["id"]) is None:
            self.send_error(None, INVALID_REQUEST, f"Invalid request: bad id {raw['id']!r}")
            return
        if self._shutdown and method != types.EXIT:
            if is_request:
                self.send_error(raw["id"], INVALID_REQUEST, "The server is shut down")
            return
        if not self.initialize_done and method not in (types.INITIALIZE, types.EXIT):
            if is_request:
                self.send_error(raw["id"], SERVER_NOT_INITIALIZED, f"{method} before initialize")
            elif method is not None:
                log.info("ignored %s: it came before initialize", method)
            return
        if self.initialize_done and method == types.INITIALIZE:
            if is_request:
                self.send_error(raw["id"], INVALID_REQUEST, "initialize was already received: it may come once")
            return
        if "params" not in raw and isinstance(method, str) and method.startswith(OWN_METHOD_PREFIX):
            raw = {**raw, "params": None}  # JSON-RPC lets params be left out (rass drops empty ones); pygls' generic
            # message for a method it does not know requires the key
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
                self.send_error(raw["id"], INTERNAL_ERROR, f"Internal error handling {method}")

    # -- pygls' bookkeeping -------------------------------------------------------------------------------

    def _execute_handler(self, msg_id, handler, callback, args=None, kwargs=None):  # type: ignore[override]
        """pygls keeps the handler's future under `msg_id` (a fresh uuid for notifications and the steps of
        generator handlers) and drops it only when it answers a request: drop every one once it is done."""
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        future = self._request_futures.get(msg_id)
        if future is not None:
            future.add_done_callback(partial(self._forget_future, msg_id))

    def _forget_future(self, msg_id: Any, future: Any) -> None:
        if self._request_futures.get(msg_id) is future:
            del self._request_futures[msg_id]

    def _handle_cancel_notification(self, msg_id: Any) -> None:
        if not isinstance(msg_id, int | str) or msg_id not in self._request_futures:  # answered already: the
            # cancel crossed the answer (or it names no request at all)
            log.debug("$/cancelRequest for %r, which is already answered", msg_id)
            return
        super()._handle_cancel_notification(msg_id)

    def send_error(self, request_id: int | str | None, code: int, message: str) -> None:
        # A plain dict: the converter would drop a None id, and JSON-RPC wants "id": null there.
        self._send_data({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})


def _strict_scalar(kind: type, value: Any, _: Any) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # JSON has one number type: 1 is a fine float
    if type(value) is not kind:
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__} {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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


class StreamServer(LanguageServer):
    """pygls' LanguageServer served by our read loop (stdio or one TCP client on 127.0.0.1) until `exit`."""

    encoding = "utf-16"  # the position encoding negotiated in `initialize`
    stderr_reaches_client = False  # on stdio, editors read our stderr too (logging_setup.py)
    _finished: asyncio.Future[int] | None = None  # the exit code, once `exit` came or the client left

    def finish(self, code: int) -> None:
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(code)

    def start_io(self, stdin=None, stdout=None) -> int:  # type: ignore[override]
        """Serve on stdin/stdout; returns the exit code. Stray prints from any library go to stderr."""
        self.stderr_reaches_client = True
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
        self.on_serve_start(loop)
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
                        self.finish(0 if self.protocol.shut_down else 1)
                        break
                    frames = reader.feed(data)
                else:
                    frames = reader.flush_stalled()
                for frame in frames:
                    self.protocol.handle_frame(frame)
        finally:
            if pending_read is not None:
                pending_read.cancel()
            await self.on_serve_end()
        return self._finished.result() if self._finished.done() else 1

    def on_serve_start(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop runs: connect what needs it."""

    async def on_serve_end(self) -> None:
        """The session is over (exit, or the client went away): stop what runs."""
