"""A document's snippets: chosen from the sources, fitted to the token budget, rendered as comments in the
file's own language with their path, and kept stable while the person types.

The prompt is `block + the file's text`: the block of snippets comes first, so the key/value cache of the
whole prompt survives a keystroke only if the block does not change. `SnippetCache` keeps a document's block
until its refresh key changes (`RefreshPolicy`): measured with `codegen-lsp bench context`, refreshing on a
new cursor line keeps the cache hit rate of a typing replay above 95 % (see the README's table).

The budget: `snippet_tokens` (at most half the prompt's) for the block, the rest for the file's own text, which
is cut first to its share (`cut_file_text`, the same `fit_window` as the backends) so that the backend's own
window never has to drop either.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from codegen_lsp.inference.rules.window import fit_window
from codegen_lsp.lsp_server.pipeline.plan import Plan
from codegen_lsp.lsp_server.workspace.declarations import ordered_for
from codegen_lsp.lsp_server.workspace.imports import resolve_imports
from codegen_lsp.lsp_server.workspace.index import WorkspaceIndex
from codegen_lsp.lsp_server.workspace.retrieval import WindowIndex, query_lines

__all__ = [
    "ALL_SOURCES",
    "RefreshPolicy",
    "Snippet",
    "SnippetCache",
    "Source",
    "candidate_snippets",
    "comment_prefix",
    "FileCut",
    "cut_file_text",
    "render",
    "render_block",
    "snippet_budget",
    "with_snippets",
]

MAX_SNIPPET_LINES = 40  # an imported file's outline, a window: enough to show, small enough to leave room
RETRIEVED_WINDOWS = 3
OPEN_FILE_WINDOWS = 2
MAX_OPEN_FILE_CHARS = 256 * 1024  # of an open document, for its windows (only its start beyond that)


class Source(str, enum.Enum):
    OPEN = "open files"  # windows of the other open documents most like the lines before the cursor
    IMPORTS = "imports"  # the outline of each file the document imports, the imported names first
    RETRIEVAL = "retrieval"  # windows of the workspace's files most like the lines before the cursor


ALL_SOURCES = frozenset(Source)


class RefreshPolicy(str, enum.Enum):
    KEYSTROKE = "keystroke"  # choose again on every request (for measuring: the cache rarely survives)
    LINE = "line"  # choose again when the cursor is on another line than last time (a new line, a jump)
    SAVE = "save"  # choose again only when the document is opened or saved


@dataclass(frozen=True)
class Snippet:
    path: str  # as shown: relative to its workspace folder
    text: str  # code, not yet commented
    source: Source


def comment_prefix(language: str) -> str:
    return "#" if language == "python" else "//"


def render(snippet: Snippet, language: str) -> str:
    """`# Path: a/b.py` then each line as a comment: CodeGen saw code, comments and paths in comments, never
    an unexplained jump to another file's code."""
    mark = comment_prefix(language)
    lines = [f"{mark} Path: {snippet.path}"] + [f"{mark} {line}".rstrip() for line in snippet.text.split("\n")]
    return "\n".join(lines) + "\n"


def render_block(snippets: Sequence[Snippet], language: str, count_tokens: Callable[[str], int], budget: int) -> str:
    """The snippets, best first, as many as fit in `budget` tokens (the last one cut at a line if it must be,
    kept only with at least two of its lines), rendered best LAST: nearest the file's text."""
    chosen: list[str] = []
    used = 0
    for snippet in snippets:
        rendered = render(snippet, language)
        tokens = count_tokens(rendered)
        if used + tokens <= budget:
            chosen.append(rendered)
            used += tokens
            continue
        lines = rendered.split("\n")[:-1]
        kept = []
        for line in lines:
            tokens = count_tokens(line + "\n")
            if used + tokens > budget:
                break
            kept.append(line + "\n")
            used += tokens
        if len(kept) >= 3:
            chosen.append("".join(kept))
        break
    return "".join(reversed(chosen))


def snippet_budget(snippet_tokens: int, prompt_budget: int) -> int:
    """The block's share: the setting, at most half the prompt's (the file's own text keeps priority)."""
    return max(0, min(snippet_tokens, prompt_budget // 2))


SLACK_TOKENS = 8  # kept free of the budget: tokens counted in pieces may merge differently once joined


@dataclass(frozen=True)
class FileCut:
    """Where the file's text starts in the prompt (a document offset), kept between keystrokes: finding it
    tokenizes the whole window (milliseconds on a long file), checking it only what was typed since."""

    start: int
    anchor: int  # the cursor when `tokens` was counted
    tokens: int  # of document[start:anchor]


def cut_file_text(
    text: str,
    offset: int,
    window_start: int,
    room: int,
    encode_with_offsets: Callable[[str], tuple[list[int], list[tuple[int, int]]]],
    kept: FileCut | None = None,
) -> FileCut:
    """The file's text for a cursor at `offset`: from `kept.start` while what was typed since still fits in
    `room` tokens, else from where `fit_window` (the backends' window, stable while typing) cuts the text
    between `window_start` and the cursor."""
    if kept is not None and window_start <= kept.start <= kept.anchor <= offset:
        typed = len(encode_with_offsets(text[kept.anchor : offset])[0]) if offset > kept.anchor else 0
        if kept.tokens + typed <= room:
            return kept
    ids, start = fit_window(text[window_start:offset], encode_with_offsets, max(1, room))
    return FileCut(window_start + start, offset, len(ids))


def with_snippets(planned: Plan, block: str, cut: FileCut) -> Plan:
    """The plan whose prompt is `block`, then the file's text from `cut.start`."""
    if not block:
        return planned
    return replace(planned, snippets=block, file_start=max(0, cut.start - planned.ctx.prompt_start))


# -- choosing ------------------------------------------------------------------------------------------------


def _import_snippets(text: str, path: Path, language: str, index: WorkspaceIndex) -> list[Snippet]:
    found = []
    for imported in resolve_imports(text, path, language, index):
        file = index.files.get(imported.path)
        if file is None:
            continue
        blocks = ordered_for(index.outline(file.path), imported.names)
        lines = "\n".join(b.text for b in blocks).split("\n")[:MAX_SNIPPET_LINES]
        if any(line.strip() for line in lines):
            found.append(Snippet(file.relative, "\n".join(lines), Source.IMPORTS))
    return found


def _window_snippets(windows, relative: Callable[[str], str], source: Source) -> list[Snippet]:
    return [Snippet(relative(w.source), w.text.rstrip("\n"), source) for w in windows if w.text.strip()]


def candidate_snippets(
    text: str,
    offset: int,
    path: Path,
    language: str,
    index: WorkspaceIndex | None,
    open_documents: Sequence[tuple[Path, str]] = (),
    sources: frozenset[Source] = ALL_SOURCES,
) -> list[Snippet]:
    """The snippets for a cursor at `offset` of `text` (the document at `path`), best first: one of each
    source in turn (imports, retrieval, open files), then the next of each."""
    path = Path(path)
    query = query_lines(text[:offset])
    lists: list[list[Snippet]] = []
    if Source.IMPORTS in sources and index is not None:
        lists.append(_import_snippets(text, path, language, index))
    open_paths = {Path(p) for p, _ in open_documents}
    if Source.RETRIEVAL in sources and index is not None and language in index.windows:
        windows = index.windows[language].query(query, RETRIEVED_WINDOWS, exclude=[str(path), *map(str, open_paths)])
        lists.append(_window_snippets(windows, lambda s: index.relative(Path(s)), Source.RETRIEVAL))
    if Source.OPEN in sources and open_documents:
        local = WindowIndex()
        for other, other_text in open_documents:
            if Path(other) != path:
                local.add(str(other), other_text[:MAX_OPEN_FILE_CHARS])
        shown = (lambda s: index.relative(Path(s))) if index is not None else (lambda s: Path(s).name)
        lists.append(_window_snippets(local.query(query, OPEN_FILE_WINDOWS), shown, Source.OPEN))
    ranked: list[Snippet] = []
    for round_ in range(max(map(len, lists), default=0)):
        ranked.extend(found[round_] for found in lists if round_ < len(found))
    seen, unique = set(), []
    for snippet in ranked:
        if (snippet.path, snippet.text) not in seen:
            seen.add((snippet.path, snippet.text))
            unique.append(snippet)
    return unique


# -- stability -----------------------------------------------------------------------------------------------


def refresh_key(policy: RefreshPolicy, text: str, offset: int, saves: int) -> object:
    """What must change for a document's snippets to be chosen again."""
    if policy is RefreshPolicy.KEYSTROKE:
        return object()  # never equal: every request chooses again
    if policy is RefreshPolicy.LINE:
        return (saves, text.count("\n", 0, offset))
    return saves


class SnippetCache:
    """Each document's block of snippets and the key it was chosen under."""

    def __init__(self, policy: RefreshPolicy = RefreshPolicy.LINE) -> None:
        self.policy = policy
        self._blocks: dict[str, tuple[object, str]] = {}
        self._tokens: dict[str, int] = {}
        self.chosen = 0  # how many times a block was chosen (for the bench and the logs)

    def block(self, uri: str, key: object, choose: Callable[[], str]) -> str:
        kept = self._blocks.get(uri)
        if kept is not None and kept[0] == key:
            return kept[1]
        block = choose()
        self.chosen += 1
        self._blocks[uri] = (key, block)
        self._tokens.pop(uri, None)
        return block

    def tokens(self, uri: str, count: Callable[[], int]) -> int:
        """The document's block's length in tokens, counted once per block."""
        if uri not in self._tokens:
            self._tokens[uri] = count()
        return self._tokens[uri]

    def forget(self, uri: str) -> None:
        self._blocks.pop(uri, None)
        self._tokens.pop(uri, None)

    def clear(self) -> None:
        self._blocks.clear()
        self._tokens.clear()
