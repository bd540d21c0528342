"""Step 5: typing what the ghost text shows answers at once, without the worker.

Tabby pre-fills cache entries for characters typed ahead; here the last answer per document is kept and a
request whose prompt is the remembered prompt plus characters that start a remembered item gets the rest
of that item. The remembered prompt is the prompt window (bounded), compared together with its start, so
what the model would see is the same; the rest of the line and the following lines must be unchanged too,
since the items were post-processed against them.

Backspace is a miss (and forgets the entry): the typed text may only grow or stay, as each request is
compared with the previous one for the document, not only with the remembered one. So is any other edit in
the window, a cursor moved elsewhere, or typing that leaves every item behind.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from codegen_lsp.lsp_server.pipeline.context import CompletionContext

__all__ = ["TypedThroughCache"]


@dataclass
class _Entry:
    prompt_start: int
    prompt: str
    line_suffix: str
    following_lines: tuple[str, ...]
    items: tuple[str, ...]
    seen: int  # length of the latest prompt compared with this entry


class TypedThroughCache:
    """Last shown items per document, for the `max_documents` most recently used documents."""

    def __init__(self, max_documents: int = 32) -> None:
        self._max_documents = max(1, max_documents)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, uri: str, ctx: CompletionContext, items: Sequence[str]) -> None:
        """Remember what was shown at `ctx`; nothing shown forgets the document."""
        kept = tuple(dict.fromkeys(item for item in items if item))
        if not kept:
            self.forget(uri)
            return
        self._entries[uri] = _Entry(
            ctx.prompt_start, ctx.prompt, ctx.line_suffix, ctx.following_lines, kept, len(ctx.prompt)
        )
        self._entries.move_to_end(uri)
        while len(self._entries) > self._max_documents:
            self._entries.popitem(last=False)

    def lookup(self, uri: str, ctx: CompletionContext) -> list[str] | None:
        """The rest of each remembered item that the newly typed text starts; None: ask the worker."""
        entry = self._entries.get(uri)
        if entry is None:
            return None
        prompt = ctx.prompt
        if (
            ctx.prompt_start != entry.prompt_start
            or len(prompt) < entry.seen
            or not prompt.startswith(entry.prompt)
            or ctx.line_suffix != entry.line_suffix
            or ctx.following_lines != entry.following_lines
        ):
            self.forget(uri)
            return None
        entry.seen = len(prompt)
        typed = prompt[len(entry.prompt) :]
        rest = [item[len(typed) :] for item in entry.items if item.startswith(typed) and item != typed]
        if not rest:
            self.forget(uri)
            return None
        self._entries.move_to_end(uri)
        return rest

    def forget(self, uri: str) -> None:
        """Drop the document's entry (closed document, a rejected answer)."""
        self._entries.pop(uri, None)
