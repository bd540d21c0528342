"""lsp_server/workspace/ignore.py and index.py: what the workspace index reads, what it skips, and its caps."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from codegen_lsp.lsp_server.workspace.ignore import IgnoreRules, parse_gitignore
from codegen_lsp.lsp_server.workspace.index import IndexLimits, build_index
from codegen_lsp.lsp_server.workspace.service import WorkspaceContext


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def indexed(root: Path, **limits) -> set[str]:
    return {f.relative for f in build_index([root], IndexLimits(**limits)).files.values()}


def test_gitignore_patterns_as_git_reads_them() -> None:
    rules = IgnoreRules().below("*.log\nbuild/\n/top.py\n!keep.log\ndocs/**/gen_*.py\n", "")
    assert rules.ignored("a.log", False) and rules.ignored("deep/er/b.log", False)
    assert not rules.ignored("keep.log", False)  # negated by a later rule
    assert rules.ignored("build", True) and not rules.ignored("build", False)  # a trailing / is folders only
    assert rules.ignored("top.py", False) and not rules.ignored("sub/top.py", False)  # a leading / anchors
    assert rules.ignored("docs/x/y/gen_1.py", False) and not rules.ignored("docs/x/y/real.py", False)
    nested = rules.below("*.py\n", "sub")  # a folder's .gitignore applies below it only
    assert nested.ignored("sub/a.py", False) and not nested.ignored("a.py", False)
    assert parse_gitignore("# a comment\n\n   \n") == []


def test_ignored_binary_big_and_foreign_files_are_skipped_and_counted(tmp_path: Path) -> None:
    root = write(
        tmp_path / "ws",
        {
            "app.py": "import util\n",
            "util.py": "def helper():\n    pass\n",
            ".gitignore": "generated/\nsecret_*.py\n",
            "generated/out.py": "x = 1\n",
            "secret_keys.py": "KEY = 'x'\n",
            "sub/.gitignore": "local.py\n",
            "sub/local.py": "y = 2\n",
            "sub/kept.py": "z = 3\n",
            "blob.py": b"\x00\x01\x02binary",
            "latin1.py": b"caf\xe9 = 1\n",
            "big.py": "a = 1\n" * 2000,
            "notes.txt": "not code",
            "node_modules/lib/index.js": "module.exports = 1;\n",
            ".git/config.py": "x = 1\n",
        },
    )
    index = build_index([root], IndexLimits(max_file_bytes=4096))
    assert {f.relative for f in index.files.values()} == {"app.py", "util.py", "sub/kept.py"}
    skipped = index.report.skipped
    assert skipped["binary"] == 2 and skipped["over 4 kB"] == 1 and skipped["not code"] >= 2
    assert skipped["ignored"] >= 5  # generated/, secret_keys.py, sub/local.py, node_modules, .git
    assert "3 files" in index.report.describe()


def test_nothing_outside_the_workspace_folders_is_read(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside", {"private.py": "TOKEN = 'do not read'\n", "dir/more.py": "x = 1\n"})
    root = write(tmp_path / "ws", {"a.py": "x = 1\n"})
    os.symlink(outside / "private.py", root / "link.py")
    os.symlink(outside / "dir", root / "linkdir")
    index = build_index([root])
    assert {f.relative for f in index.files.values()} == {"a.py"}
    assert all("do not read" not in f.text for f in index.files.values())
    assert index.report.skipped["symbolic links"] == 2
    assert index.contains(root / "a.py") and not index.contains(outside / "private.py")


def test_every_cap_stops_the_index_and_says_which(tmp_path: Path) -> None:
    root = write(tmp_path / "ws", {f"pkg{i // 10}/m{i}.py": f"value_{i} = {i}\n" * 10 for i in range(60)})
    by_files = build_index([root], IndexLimits(max_files=25))
    assert len(by_files.files) == 25 and by_files.report.capped == "25 files"
    by_bytes = build_index([root], IndexLimits(max_total_bytes=1500))
    assert by_bytes.report.bytes <= 1500 and "MB of text" in by_bytes.report.capped
    by_entries = build_index([root], IndexLimits(max_entries=30))
    assert len(by_entries.files) < 30 and by_entries.report.capped == "30 directory entries"
    whole = build_index([root])
    assert len(whole.files) == 60 and not whole.report.capped and whole.report.memory_bytes > whole.report.bytes


def test_the_walk_is_breadth_first_so_a_capped_index_keeps_the_files_nearest_the_root(tmp_path: Path) -> None:
    root = write(tmp_path / "ws", {"a/b/c/deep.py": "x = 1\n", "top.py": "y = 1\n", "a/mid.py": "z = 1\n"})
    assert indexed(root, max_files=2) == {"top.py", "a/mid.py"}


def test_the_index_is_built_in_a_background_thread_and_can_be_stopped(tmp_path: Path) -> None:
    root = write(tmp_path / "ws", {f"m{i}.py": "x = 1\n" for i in range(50)})
    context = WorkspaceContext()
    seen: list[str] = []
    import codegen_lsp.lsp_server.workspace.service as service

    real = service.build_index

    def recording(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return real(*args, **kwargs)

    service.build_index = recording
    try:
        context.start([root], "bundled", None, wait=True)
    finally:
        service.build_index = real
    assert seen == ["codegen-lsp-index"] and threading.current_thread().name != seen[0]
    assert context.ready and len(context.index.files) == 50
    stop = threading.Event()
    stop.set()
    assert build_index([root], stop=stop).report.capped == "stopped"
