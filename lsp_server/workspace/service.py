"""The server's context from other files: the workspace index (built in a background thread), the tokenizer
that measures the budget, the open documents and each document's block of snippets.

`plan_with_snippets` is the one way a plan gets its snippets, for the server and for `codegen-lsp complete
--workspace DIR` alike (the CLI indexes in its own thread and waits), so both send the backend the same prompt.
Nothing here blocks a keystroke on the index: until it is built, and while the tokenizer loads, plans go out
without snippets.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

from codegen_lsp.inference.rules.generation import prompt_budget
from codegen_lsp.lsp_server.pipeline.plan import Plan
from codegen_lsp.lsp_server.settings import Settings
from codegen_lsp.lsp_server.workspace.index import DEFAULT_LIMITS, IndexLimits, WorkspaceIndex, build_index
from codegen_lsp.lsp_server.workspace.snippets import (
    ALL_SOURCES,
    SLACK_TOKENS,
    FileCut,
    RefreshPolicy,
    SnippetCache,
    Source,
    candidate_snippets,
    cut_file_text,
    refresh_key,
    render_block,
    snippet_budget,
    with_snippets,
)

__all__ = ["WorkspaceContext", "path_of_uri"]

log = logging.getLogger("codegen_lsp.workspace")


def path_of_uri(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path)).resolve()


class WorkspaceContext:
    def __init__(
        self,
        limits: IndexLimits = DEFAULT_LIMITS,
        policy: RefreshPolicy = RefreshPolicy.LINE,
        sources: frozenset[Source] = ALL_SOURCES,
    ) -> None:
        self.limits = limits
        self.sources = sources
        self.cache = SnippetCache(policy)
        self.index: WorkspaceIndex | None = None
        self.files = None  # backends.openai.ModelFiles: the tokenizer and n_positions
        self.folders: tuple[Path, ...] = ()  # indexed
        self.roots: tuple[Path, ...] = ()  # the workspace folders of `initialize`
        self._model: tuple[str, str | None] | None = None
        self._open: dict[str, object] = {}  # uri -> its Document (the store's, kept up to date by the server)
        self._saves: dict[str, int] = {}
        self._cuts: dict[str, tuple[object, FileCut]] = {}  # uri -> (refresh key, where its text starts)
        self.last_prompts: dict[str, str] = {}  # uri -> the last prompt with snippets (tests, debugging)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life ----------------------------------------------------------------------------------------------

    def start(self, folders: Sequence[Path], model: str, revision: str | None, *, wait: bool = False) -> None:
        """Index `folders` and load `model`'s tokenizer in a background thread (again only when they changed).
        `wait`: return when done (the CLI)."""
        folders = tuple(Path(f).resolve() for f in folders if Path(f).is_dir())
        if folders == self.folders and (model, revision) == self._model and self._thread is not None:
            return
        self.stop()
        self.folders, self._model, self._stop = folders, (model, revision), threading.Event()
        self._thread = threading.Thread(
            target=self._build, args=(folders, model, revision, self._stop), name="codegen-lsp-index", daemon=True
        )
        self._thread.start()
        if wait:
            self._thread.join()

    def _build(self, folders: tuple[Path, ...], model: str, revision: str | None, stop: threading.Event) -> None:
        from codegen_lsp.lsp_server.backends.local import EngineError
        from codegen_lsp.lsp_server.backends.openai import load_model_files

        try:
            files = load_model_files(model, revision)
        except EngineError as error:
            log.warning("no snippets from other files: the tokenizer of %s did not load: %s", model, error.message)
            return
        index = build_index(folders, self.limits, stop)
        if stop.is_set():
            return
        self.files, self.index = files, index
        self.cache.clear()
        log.info("workspace index of %s: %s", ", ".join(map(str, folders)) or "no folder", index.report.describe())

    def stop(self) -> None:
        self._stop.set()
        self._thread = None

    @property
    def ready(self) -> bool:
        return self.index is not None and self.files is not None

    def set_roots(self, params: object) -> None:
        """The workspace folders an `initialize` request names (workspaceFolders, else rootUri, else rootPath):
        the only folders read. None named: no index (a single file has no workspace)."""
        folders = getattr(params, "workspace_folders", None) or []
        uris = [getattr(folder, "uri", "") for folder in folders] or [getattr(params, "root_uri", None) or ""]
        paths = [path_of_uri(uri) for uri in uris if uri]
        root_path = getattr(params, "root_path", None)
        if not any(paths) and root_path:
            paths = [Path(root_path).resolve()]
        self.roots = tuple(p for p in paths if p is not None)

    def configure(self, settings: Settings) -> None:
        """Index the roots while snippets are on (again when the model changes: its tokenizer measures the
        budget); drop the index when they are turned off."""
        if settings.generation.context_snippet_tokens > 0 and self.roots:
            self.start(self.roots, settings.model.model, settings.model.revision)
        elif self._thread is not None or self.index is not None:
            self.stop()
            self.index = None
            self.folders = ()
            self.cache.clear()

    # -- documents -----------------------------------------------------------------------------------------

    def opened(self, uri: str, document: object) -> None:
        self._open[uri] = document
        self.saved(uri)

    def saved(self, uri: str) -> None:
        self._saves[uri] = self._saves.get(uri, 0) + 1

    def closed(self, uri: str) -> None:
        self._open.pop(uri, None)
        self._saves.pop(uri, None)
        self._cuts.pop(uri, None)
        self.last_prompts.pop(uri, None)
        self.cache.forget(uri)

    def _open_documents(self, uri: str, language: str) -> list[tuple[Path, str]]:
        from codegen_lsp.lsp_server.languages import language_for_id

        found = []
        for other, document in self._open.items():
            kind = language_for_id(getattr(document, "language_id", None))
            path = path_of_uri(other)
            if other != uri and kind is not None and kind.name == language and path is not None:
                if self.index is None or self.index.contains(path):
                    found.append((path, document.text))  # type: ignore[attr-defined]
        return found

    # -- the prompt ----------------------------------------------------------------------------------------

    async def attach(self, planned: Plan, uri: str, text: str, offset: int, settings: Settings) -> Plan:
        """`plan_with_settings` off the event loop (choosing snippets reads the index); at once when off."""
        if settings.generation.context_snippet_tokens <= 0 or not self.ready:
            return planned
        return await asyncio.to_thread(self.plan_with_settings, planned, uri, text, offset, settings)

    def plan_with_settings(self, planned: Plan, uri: str, text: str, offset: int, settings: Settings) -> Plan:
        g = settings.generation
        return self.plan_with_snippets(
            planned,
            uri,
            text,
            offset,
            snippet_tokens=g.context_snippet_tokens,
            context_tokens=g.context_tokens,
            max_new_tokens=g.max_new_tokens,
        )

    def plan_with_snippets(
        self,
        planned: Plan,
        uri: str,
        text: str,
        offset: int,
        *,
        snippet_tokens: int,
        context_tokens: int,
        max_new_tokens: int,
    ) -> Plan:
        """`planned` with the document's snippets before its text, or as it is (off, not ready, no file)."""
        path = path_of_uri(uri)
        if snippet_tokens <= 0 or not self.ready or path is None:
            return planned
        assert self.files is not None
        language = planned.ctx.language.name
        budget = prompt_budget(context_tokens, max_new_tokens, self.files.n_positions)
        share = snippet_budget(snippet_tokens, budget)
        tokenizer = self.files.tokenizer
        key = (refresh_key(self.cache.policy, text, offset, self._saves.get(uri, 0)), share, budget)

        def choose() -> str:
            found = candidate_snippets(
                text, offset, path, language, self.index, self._open_documents(uri, language), self.sources
            )
            return render_block(found, language, lambda s: len(tokenizer.encode(s)), share)

        block = self.cache.block(uri, key, choose)
        if not block:
            return planned
        kept = self._cuts.get(uri)
        room = budget - self.cache.tokens(uri, lambda: len(tokenizer.encode(block))) - SLACK_TOKENS
        cut = cut_file_text(
            text, offset, planned.ctx.prompt_start, room, tokenizer.encode_with_offsets,
            kept[1] if kept is not None and kept[0] == key else None,
        )  # fmt: skip
        self._cuts[uri] = (key, cut)
        planned = with_snippets(planned, block, cut)
        self.last_prompts[uri] = planned.prompt
        return planned
