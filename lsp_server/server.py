"""The language server: pygls 2 handlers, each a few lines that delegate (as jedi-language-server's).

Where things live: `rpc.py` reads, frames and answers malformed input; `supervisor.py` runs the model backend
and reports its loading; `completer.py` runs the completion pipeline (`pipeline/`) top-down; `items.py` makes
LSP items of its texts; `documents.py` keeps the text; `settings/` declares every setting; `backends/` holds the
local worker's client and the remote adapter. docs/architecture.md has the whole map.

Protocol choices:
- positions: utf-8 when the client offers it (whatever its order of preference), else utf-16;
- text sync: incremental, kept by `documents.DocumentStore` (pygls' workspace gets no text: see documents.py);
- `textDocument/inlineCompletion` (LSP 3.18): one item per candidate, an empty range at the cursor;
  `codegenLsp/inlineCompletion` is the same request with `numCandidates` (1-8), for the alternatives an editor
  fetches when the person first cycles;
- `textDocument/completion`: the fallback for clients without inline completion (eglot, Neovim < 0.12),
  advertised only to them. A client that declares inline completion would otherwise ask the model twice per
  keystroke, each request superseding the other (it gets no completion items if it asks anyway);
- documents in the `languages` setting's languages are completed (see lsp_server/languages.py); others get no items;
- the model loads in a worker process started after `initialized`, shown with work done progress when the
  client supports it; failures with window/showMessage; logs with window/logMessage or stderr
  (one way at a time: logging_setup.py).

The server process never imports torch: only the worker does.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import sys
from dataclasses import replace
from typing import Any

from lsprotocol import converters, types
from pygls.capabilities import get_capability
from pygls.exceptions import JsonRpcInvalidParams

from codegen_lsp.lsp_server.backends.openai_http import redact_urls
from codegen_lsp.lsp_server.completer import Completer, Outcome
from codegen_lsp.lsp_server.documents import Change, DocumentStore
from codegen_lsp.lsp_server.items import completion_items, inline_items
from codegen_lsp.lsp_server.logging_setup import CLIENT_HANDLER, set_level
from codegen_lsp.lsp_server.pipeline import completed_language
from codegen_lsp.lsp_server.progress import ClientProgress
from codegen_lsp.lsp_server.rpc import CodegenProtocol, StreamServer
from codegen_lsp.lsp_server.settings import SECTION_NAMES, Settings, needs_reload, parse_settings, to_wire
from codegen_lsp.lsp_server.status import SET_ENABLED_COMMAND, STATUS_METHOD, TOGGLE_COMMAND, StatusBoard
from codegen_lsp.lsp_server.supervisor import Supervisor

__all__ = ["CodegenLanguageServer", "DEBUG_ENV", "VERSION", "server"]

INLINE_ALTERNATIVES_METHOD = "codegenLsp/inlineCompletion"  # + numCandidates: a first cycle's alternatives

log = logging.getLogger("codegen_lsp.server")

VERSION = "0.1.0"
DEBUG_ENV = "CODEGEN_LSP_DEBUG"  # "1": register the debug commands (tests read the server's document text)
CONFIGURATION_TIMEOUT_S = 2.0
COMPLETION_TRIGGER_CHARACTERS = [".", "(", "[", "{", ",", "=", ":", " "]


class CodegenLanguageServer(StreamServer):
    def __init__(self) -> None:
        super().__init__("codegen-lsp", VERSION, protocol_cls=CodegenProtocol, max_workers=2)
        self.documents = DocumentStore()
        self.settings = Settings()
        self.status = StatusBoard(self._send_status)  # what every editor shows, and the on/off switches
        self.supervisor = Supervisor(
            settings=lambda: self.settings,
            show=self.show,
            shutting_down=lambda: self.protocol.shut_down,
            begin_progress=self._begin_progress,
            status=self.status,
        )
        self.completer = Completer(lambda: self.supervisor.backend)
        self.completer.on_generating = self.status.generating
        self.initialized = False
        self.stopping: asyncio.Future | None = None  # the backend's stop begun at `shutdown`: `exit` awaits it
        self._shown: set[str] = set()
        self._progress_ids = itertools.count(1)

    # -- client facts --------------------------------------------------------------------------------------

    def _capability(self, field: str) -> Any:
        return get_capability(self.protocol.client_capabilities, field)

    @property
    def supports_progress(self) -> bool:
        return bool(self._capability("window.work_done_progress"))

    @property
    def supports_configuration(self) -> bool:
        return bool(self._capability("workspace.configuration"))

    @property
    def supports_inline_completion(self) -> bool:
        return self._capability("text_document.inline_completion") is not None

    @property
    def reads_markdown_documentation(self) -> bool:
        formats = self._capability("text_document.completion.completion_item.documentation_format") or []
        return types.MarkupKind.Markdown in formats

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

    def _begin_progress(self, message: str) -> ClientProgress | None:
        """A work done progress in the client (the model loading), when it shows them and the session began."""
        if not (self.supports_progress and self.initialized):
            return None
        token = f"codegen-lsp/model/{os.getpid()}/{next(self._progress_ids)}"
        return ClientProgress(self, token, "codegen-lsp", message)

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
        self.completer.workspace.configure(new)  # indexes the workspace while contextSnippetTokens > 0
        if old != new:
            log.info("settings from %s: %s", source, json.dumps(redact_urls(to_wire(new))))
            self.completer.reset()
        if self.supervisor.backend is not None and needs_reload(old, new):
            asyncio.ensure_future(self.supervisor.reload())

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

    # -- serving -------------------------------------------------------------------------------------------

    def on_serve_start(self, loop: asyncio.AbstractEventLoop) -> None:
        CLIENT_HANDLER.connect(
            self._log_to_client,
            loop.call_soon_threadsafe,
            ready=lambda: self.initialized and self.protocol.writer is not None,
            instead_of_stderr=self.stderr_reaches_client,
        )

    async def on_serve_end(self) -> None:
        CLIENT_HANDLER.disconnect()
        self.status.close()
        await self.supervisor.stop()

    def _send_status(self, status: dict[str, Any]) -> None:
        if self.initialized and self.protocol.writer is not None:
            self.protocol.notify(STATUS_METHOD, status)

    def _log_to_client(self, level: int, text: str) -> None:
        if self.initialized and self.protocol.writer is not None:
            self.send_log(level, text)

    async def get_completions(
        self, uri: str, position: types.Position, invoked: bool, kind: str, settings: Settings | None = None
    ):
        document = self.documents.get(uri)
        if document is not None and not self.status.allows(document.language_id, uri):
            self.completer.stats["switched_off"] += 1
            log.debug("no items: completions are switched off for %s", uri)
            return Outcome([], source="skipped", detail="switched off")
        outcome = await self._complete(uri, position, invoked, kind, settings or self.settings)
        if outcome.source == "backend":
            self.status.answered(outcome.timings["total_ms"])
        return outcome

    async def _complete(self, uri: str, position: types.Position, invoked: bool, kind: str, settings: Settings):
        return await self.completer.get_completions(
            uri,
            self.documents.get(uri),
            position.line,
            position.character,
            encoding=self.encoding,
            settings=settings,
            invoked=invoked,
            kind=kind,
        )


server = CodegenLanguageServer()


# -- life cycle ----------------------------------------------------------------------------------------------


@server.feature(types.INITIALIZE)
def initialize(ls: CodegenLanguageServer, params: types.InitializeParams) -> None:
    ls.completer.workspace.set_roots(params)  # the only folders read for snippets of other files
    settings, warnings = parse_settings(params.initialization_options)
    ls.apply_settings(settings, warnings, "initializationOptions")
    client = params.client_info.name if params.client_info else "an unnamed client"
    log.info("initialize from %s (pid %s)", client, params.process_id)


@server.feature(types.INITIALIZED)
async def initialized(ls: CodegenLanguageServer, params: types.InitializedParams) -> None:
    ls.initialized = True
    ls.status.resend()
    log.info(
        "position encoding %s; progress %s; inline completion %s",
        ls.encoding,
        ls.supports_progress,
        ls.supports_inline_completion,
    )
    await ls.pull_configuration()
    await ls.supervisor.start()


@server.feature(types.SHUTDOWN)
def shutdown(ls: CodegenLanguageServer, params: None) -> None:
    """Answered at once (eglot waits only 1.5 s); the worker stops in the background and `exit` waits for it."""
    log.info("shutdown")
    ls.stopping = asyncio.ensure_future(ls.supervisor.stop())


@server.feature(types.EXIT)
async def exit_(ls: CodegenLanguageServer, params: None) -> None:
    await (ls.stopping if ls.stopping is not None else ls.supervisor.stop())


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def did_change_configuration(ls: CodegenLanguageServer, params: types.DidChangeConfigurationParams) -> None:
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
    if completed_language(doc.language_id, ls.settings) is None:
        log.info(
            "%s is %s: it gets no completions (setting languages: %s, model %s)",
            doc.uri,
            doc.language_id,
            _show_languages(ls.settings.server.languages),
            ls.settings.model.model,
        )
    document = ls.documents.get(doc.uri)
    if document is not None:
        ls.completer.workspace.opened(doc.uri, document)
        if ls.status.allows(doc.language_id, doc.uri):  # a document switched off costs the backend nothing
            ls.completer.prefill(doc.uri, document, ls.settings)  # while the person reads


def _show_languages(setting: str | tuple[str, ...]) -> str:
    return setting if isinstance(setting, str) else "[" + ", ".join(setting) + "]"


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: CodegenLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
    changes = []
    for change in params.content_changes:
        if isinstance(change, types.TextDocumentContentChangePartial):
            r = change.range
            changes.append(Change(change.text, (r.start.line, r.start.character, r.end.line, r.end.character)))
        else:
            changes.append(Change(change.text))
    uri = params.text_document.uri
    if not ls.documents.change(uri, changes, params.text_document.version, ls.encoding):
        log.warning("didChange for %s, which is not open: ignored", uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: CodegenLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.documents.close(params.text_document.uri)
    ls.completer.forget(params.text_document.uri)


# -- completions ---------------------------------------------------------------------------------------------


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def inline_completion(
    ls: CodegenLanguageServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
    outcome = await ls.get_completions(params.text_document.uri, params.position, invoked, "inline")
    if outcome.cursor is None or not outcome.items:
        return types.InlineCompletionList(items=[])
    return inline_items(outcome.items, outcome.cursor)


@server.feature(
    types.TEXT_DOCUMENT_COMPLETION,
    types.CompletionOptions(trigger_characters=COMPLETION_TRIGGER_CHARACTERS, resolve_provider=False),
)
async def completion(ls: CodegenLanguageServer, params: types.CompletionParams) -> types.CompletionList:
    if ls.supports_inline_completion:
        return types.CompletionList(is_incomplete=False, items=[])
    invoked = params.context is None or params.context.trigger_kind == types.CompletionTriggerKind.Invoked
    outcome = await ls.get_completions(params.text_document.uri, params.position, invoked, "completion")
    if outcome.cursor is None or not outcome.items or outcome.planned is None:
        return types.CompletionList(is_incomplete=True, items=[])
    document = ls.documents.get(params.text_document.uri)
    language = document.language_id if document is not None else None
    markdown_language = language if ls.reads_markdown_documentation else None
    ctx = outcome.planned.ctx
    return completion_items(
        outcome.items, ctx.line_prefix, outcome.cursor, ls.encoding, markdown_language, ctx.language.identifier_extra
    )


# -- status and on/off (lsp_server/status.py) ---------------------------------------------------------------


def _plain(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return {key: _plain(item) for key, item in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


@server.feature(INLINE_ALTERNATIVES_METHOD)
async def inline_alternatives(ls: CodegenLanguageServer, params: Any) -> types.InlineCompletionList:
    """`textDocument/inlineCompletion`'s params plus `numCandidates` (1-8): the same answer with that many
    candidates, asked afresh. Editors ask for one while typing and for the alternatives when the person first
    cycles (as Copilot does)."""
    params = _plain(params)  # pygls hands a custom method's params over as namedtuples
    count = params.get("numCandidates") if isinstance(params, dict) else None
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 8:
        raise JsonRpcInvalidParams(f"{INLINE_ALTERNATIVES_METHOD}: numCandidates must be 1-8, not {count!r}")
    try:
        inline = converters.get_converter().structure(params, types.InlineCompletionParams)
    except Exception as error:  # noqa: BLE001 - any shape error is the client's
        raise JsonRpcInvalidParams(f"{INLINE_ALTERNATIVES_METHOD}: {error}") from None
    uri = inline.text_document.uri
    settings = replace(ls.settings, generation=replace(ls.settings.generation, num_candidates=count))
    ls.completer.typed_through.forget(uri)  # what it remembers is the single candidate
    invoked = inline.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
    outcome = await ls.get_completions(uri, inline.position, invoked, "alternatives", settings)
    if outcome.cursor is None or not outcome.items:
        return types.InlineCompletionList(items=[])
    return inline_items(outcome.items, outcome.cursor)


@server.feature(STATUS_METHOD)
def status(ls: CodegenLanguageServer, params: Any) -> dict[str, Any]:
    return ls.status.current()


@server.command(SET_ENABLED_COMMAND)
def set_enabled(ls: CodegenLanguageServer, *arguments: Any) -> dict[str, Any]:
    try:
        if len(arguments) != 1:
            raise ValueError(f"{SET_ENABLED_COMMAND} takes one argument object, not {len(arguments)} arguments")
        status = ls.status.set_enabled(arguments[0])
    except ValueError as error:
        raise JsonRpcInvalidParams(str(error)) from None
    log.info("switches: %s", {k: status[k] for k in ("enabled", "snoozedUntil", "disabledLanguages", "disabledUris")})
    return status


@server.command(TOGGLE_COMMAND)
def toggle(ls: CodegenLanguageServer, *arguments: Any) -> dict[str, Any]:
    status = ls.status.toggle()
    log.info("switches: completions %s", "on" if status["enabled"] else "off")
    return status


# -- debugging (CODEGEN_LSP_DEBUG=1 only: not part of the advertised surface otherwise) ----------------------


def _loaded_twice() -> list[list[str]]:
    """Our modules whose file is loaded under two names (`python -m lsp_server` once made two `Settings`)."""
    ours = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # lsp_server/, inference/, ... are in it
    names: dict[str, list[str]] = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path or name in ("__main__", "__mp_main__"):  # the running script's own names (spawn adds one)
            continue
        if os.path.realpath(path).startswith(ours + os.sep):
            names.setdefault(os.path.realpath(path), []).append(name)
    return sorted(sorted(both) for both in names.values() if len(both) > 1)


if os.environ.get(DEBUG_ENV, "") not in ("", "0"):

    @server.command("codegenLsp.debugDocumentText")
    def debug_document_text(ls: CodegenLanguageServer, uri: str) -> str | None:
        document = ls.documents.get(uri)
        return None if document is None else document.text

    @server.command("codegenLsp.debugState")
    def debug_state(ls: CodegenLanguageServer) -> dict[str, Any]:
        backend = ls.supervisor.backend
        ready_info = getattr(backend, "ready_info", None)
        return {
            "encoding": ls.encoding,
            "engine": None if backend is None else backend.state,
            "backend": type(backend).__name__ if backend is not None else None,
            "ready": getattr(backend, "served_model", None) if ready_info is None else ready_info.model,
            "stats": dict(ls.completer.stats),
            "snippet_prompts": ls.completer.workspace.last_prompts,  # uri -> its last prompt with snippets
            "settings": redact_urls(to_wire(ls.settings)),
            "documents": len(ls.documents),
            "handler_futures": ls.protocol.handlers_in_flight(),  # in flight only: nothing kept per message
            "modules": sorted(m for m in ("torch", "transformers", "numpy") if m in sys.modules),
            "duplicate_modules": _loaded_twice(),
        }
