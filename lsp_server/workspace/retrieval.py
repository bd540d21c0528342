"""Similar code by retrieval: sliding windows of lines over the indexed files, ranked by the Jaccard similarity
of their identifier sets with the lines before the cursor (RepoCoder's sparse retriever, Tabby's snippets).

Windows are WINDOW_LINES lines every STRIDE lines. The index keeps, per identifier, the windows that contain it
(an inverted index of 4-byte window numbers) and each window's identifier count, never the window's text: a
window is cut out of its file's text (held once, by the workspace index) when it is returned. Identifiers found
in more than COMMON_FRACTION of the windows (`self`, `return`, `i`) are left out of the intersection, as stop
words: they say nothing about similarity and their postings would make each query cost O(windows).
"""

from __future__ import annotations

import re
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["COMMON_FRACTION", "STRIDE", "WINDOW_LINES", "Window", "WindowIndex", "identifiers", "query_lines"]

WINDOW_LINES = 20
STRIDE = 10
COMMON_FRACTION = 0.05
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


def identifiers(text: str) -> set[str]:
    return set(_IDENTIFIER.findall(text))


def query_lines(text_before_cursor: str, lines: int = WINDOW_LINES) -> str:
    """What is compared with the windows: the last `lines` lines before the cursor (with the cursor's own)."""
    start = len(text_before_cursor)
    for _ in range(lines):
        start = text_before_cursor.rfind("\n", 0, start)
        if start <= 0:
            return text_before_cursor
    return text_before_cursor[start + 1 :]


@dataclass(frozen=True)
class Window:
    source: str  # the file's key in the index (its absolute path)
    first_line: int  # 0-based
    text: str
    score: float


class WindowIndex:
    def __init__(self, lines: int = WINDOW_LINES, stride: int = STRIDE) -> None:
        self.lines, self.stride = lines, stride
        self._texts: dict[str, str] = {}
        self._sources: list[str] = []  # window number -> its file
        self._first_lines = array("I")
        self._sizes = array("I")  # identifiers in the window
        self._postings: dict[str, array] = {}

    def __len__(self) -> int:
        return len(self._sources)

    def add(self, source: str, text: str) -> None:
        self._texts[source] = text
        lines = text.split("\n")
        last_start = max(len(lines) - self.lines, 0)
        starts = list(range(0, last_start + 1, self.stride))
        if starts[-1] != last_start:
            starts.append(last_start)
        for first in starts:
            found = identifiers("\n".join(lines[first : first + self.lines]))
            if not found:
                continue
            number = len(self._sources)
            self._sources.append(source)
            self._first_lines.append(first)
            self._sizes.append(len(found))
            for name in found:
                posting = self._postings.get(name)
                if posting is None:
                    posting = self._postings[name] = array("I")
                posting.append(number)

    def memory_bytes(self) -> int:
        postings = sum(p.itemsize * len(p) + 64 for p in self._postings.values())
        return postings + 8 * len(self._sources) + 8 * len(self._sizes) + 100 * len(self._postings)

    def query(self, text: str, k: int, exclude: Iterable[str] = ()) -> list[Window]:
        """The `k` windows most similar to `text`, best first, at most one per overlapping stretch of a file,
        none from the files in `exclude`."""
        wanted = identifiers(text)
        if not wanted or not self._sources:
            return []
        common = max(COMMON_FRACTION * len(self._sources), 20)
        hits: Counter[int] = Counter()
        for name in wanted:
            posting = self._postings.get(name)
            if posting is not None and len(posting) <= common:
                hits.update(posting)
        excluded = set(exclude)
        ranked = sorted(
            ((inter / (len(wanted) + self._sizes[n] - inter), n) for n, inter in hits.items()),
            key=lambda pair: (-pair[0], pair[1]),
        )
        chosen: list[Window] = []
        taken: dict[str, list[int]] = {}
        for score, number in ranked:
            source, first = self._sources[number], self._first_lines[number]
            if source in excluded or any(abs(first - other) < self.lines for other in taken.get(source, ())):
                continue
            taken.setdefault(source, []).append(first)
            lines = self._texts[source].split("\n")[first : first + self.lines]
            chosen.append(Window(source, first, "\n".join(lines), score))
            if len(chosen) == k:
                break
        return chosen
