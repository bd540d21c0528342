"""The workspace index: the text of the workspace's code files, within caps, built off the event loop.

Only the workspace folders are read (symbolic links are not followed out of them); `.gitignore` is respected
(`ignore.py`); files over `max_file_bytes`, binary files (a NUL byte, or not UTF-8) and files of languages we
do not complete are skipped. The walk is breadth-first, so a capped index holds the files nearest the roots.
Every cap is counted in `IndexReport`, which the server logs: nothing of the index ever leaves the machine.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from codegen_lsp.lsp_server.languages import language_for_path
from codegen_lsp.lsp_server.workspace.declarations import Block, outline
from codegen_lsp.lsp_server.workspace.ignore import IgnoreRules
from codegen_lsp.lsp_server.workspace.retrieval import WindowIndex

__all__ = [
    "DEFAULT_LIMITS",
    "IndexLimits",
    "IndexReport",
    "IndexedFile",
    "WorkspaceIndex",
    "build_index",
    "read_code_file",
]


@dataclass(frozen=True)
class IndexLimits:
    max_file_bytes: int = 256 * 1024  # a bigger file is generated or data, not code to imitate
    max_files: int = 5000
    max_total_bytes: int = 16 * 1024 * 1024  # of text kept; the retrieval postings add about a third
    max_entries: int = 200_000  # directory entries looked at in all; a bigger tree is indexed in part


DEFAULT_LIMITS = IndexLimits()


@dataclass
class IndexReport:
    files: int = 0
    bytes: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    capped: str = ""  # which cap ended the walk early, if one did
    seconds: float = 0.0
    memory_bytes: int = 0  # an estimate: the texts plus the retrieval index

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def describe(self) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items())) or "none"
        capped = f"; stopped early: {self.capped}" if self.capped else ""
        return (
            f"{self.files} files, {self.bytes / 1e6:.1f} MB of text, about {self.memory_bytes / 1e6:.1f} MB in "
            f"memory, in {self.seconds:.2f} s; skipped: {skipped}{capped}"
        )


@dataclass(frozen=True)
class IndexedFile:
    path: Path  # absolute
    relative: str  # to its workspace folder, "/"-separated: what a snippet's header shows
    language: str  # Language.name
    text: str


def read_code_file(path: Path, max_bytes: int) -> str | None | tuple[str]:
    """The file's text; None when it is too big; ("binary",) when it is not UTF-8 text."""
    try:
        if path.stat().st_size > max_bytes:
            return None
        data = path.read_bytes()
    except OSError:
        return ("unreadable",)
    if b"\0" in data[:8192]:
        return ("binary",)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return ("binary",)


class WorkspaceIndex:
    """The indexed files by path and by language, and a retrieval index per language."""

    def __init__(self, roots: Iterable[Path]) -> None:
        self.roots = tuple(Path(root).resolve() for root in roots)
        self.files: dict[Path, IndexedFile] = {}
        self.by_suffix: dict[str, list[Path]] = {}  # the last path component -> its files (imports resolve by it)
        self.windows: dict[str, WindowIndex] = {}
        self.report = IndexReport()
        self._outlines: dict[Path, list[Block]] = {}

    def outline(self, path: Path) -> list[Block]:
        """The declarations of an indexed file, read once."""
        found = self._outlines.get(path)
        if found is None:
            file = self.files[path]
            found = self._outlines[path] = outline(file.text, file.language)
        return found

    def add(self, file: IndexedFile) -> None:
        self.files[file.path] = file
        self.by_suffix.setdefault(file.path.name, []).append(file.path)
        self.windows.setdefault(file.language, WindowIndex()).add(str(file.path), file.text)

    def contains(self, path: Path) -> bool:
        """Whether `path` is inside a workspace folder (nothing outside them is read)."""
        resolved = Path(path).resolve()
        return any(resolved == root or root in resolved.parents for root in self.roots)

    def relative(self, path: Path) -> str:
        for root in self.roots:
            if root == path or root in path.parents:
                return path.relative_to(root).as_posix()
        return path.name


def build_index(
    roots: Iterable[Path], limits: IndexLimits = DEFAULT_LIMITS, stop: threading.Event | None = None
) -> WorkspaceIndex:
    """Walk `roots` breadth-first and index their code files within `limits`. Blocking: run it in a thread.
    `stop` set: return what is indexed so far."""
    started = time.perf_counter()
    index = WorkspaceIndex(roots)
    report = index.report
    entries = 0
    queue: deque[tuple[Path, Path, str, IgnoreRules]] = deque(
        (root, root, "", IgnoreRules()) for root in index.roots if root.is_dir()
    )
    while queue and not report.capped:
        root, folder, relative, rules = queue.popleft()
        rules = rules.below(_read_small(folder / ".gitignore"), relative)
        try:
            with os.scandir(folder) as scan:
                children = sorted(scan, key=lambda entry: entry.name)
        except OSError:
            report.skip("unreadable folders")
            continue
        for entry in children:
            entries += 1
            if stop is not None and stop.is_set():
                report.capped = "stopped"
                break
            if entries > limits.max_entries:
                report.capped = f"{limits.max_entries} directory entries"
                break
            child = f"{relative}/{entry.name}" if relative else entry.name
            try:
                is_folder = entry.is_dir(follow_symlinks=False)
                if entry.is_symlink():
                    report.skip("symbolic links")
                    continue
            except OSError:
                continue
            if rules.ignored(child, is_folder):
                report.skip("ignored")
                continue
            if is_folder:
                queue.append((root, Path(entry.path), child, rules))
                continue
            language = language_for_path(entry.name)
            if language is None:
                report.skip("not code")
                continue
            if report.files >= limits.max_files:
                report.capped = f"{limits.max_files} files"
                break
            text = read_code_file(Path(entry.path), limits.max_file_bytes)
            if text is None:
                report.skip(f"over {limits.max_file_bytes // 1024} kB")
                continue
            if isinstance(text, tuple):
                report.skip(text[0])
                continue
            if report.bytes + len(text) > limits.max_total_bytes:
                report.capped = f"{limits.max_total_bytes // (1024 * 1024)} MB of text"
                break
            index.add(IndexedFile(Path(entry.path), child, language.name, text))
            report.files += 1
            report.bytes += len(text)
    report.seconds = time.perf_counter() - started
    report.memory_bytes = sum(sys.getsizeof(f.text) for f in index.files.values()) + sum(
        w.memory_bytes() for w in index.windows.values()
    )
    return index


def _read_small(path: Path, limit: int = 64 * 1024) -> str | None:
    try:
        if not path.is_file() or path.stat().st_size > limit:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
