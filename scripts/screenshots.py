#!/usr/bin/env python3
"""Regenerates the pictures of ghost text in the README (docs/screenshots/{vscode,nvim,emacs}.png).

They are taken by the on-screen tests themselves, at the moment each checks the ghost text (the bundled model,
examples/inventory.py cut after `def add(...):`, `        if` typed): VS Code through Playwright, Neovim and
Emacs from tmux's coloured capture, drawn by Chromium. Needs what editors/setup_tests.sh installs.

    python scripts/screenshots.py            # all three
    python scripts/screenshots.py nvim       # one (vscode, nvim, emacs)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "screenshots"
TESTS = {
    "vscode": "tests/test_editor_vscode_ui.py::test_first_suggestion_appears_without_typing_again",
    "nvim": "tests/test_editor_screens.py::test_nvim_ghost_text_on_screen",
    "emacs": "tests/test_editor_screens.py::test_emacs_ghost_text_on_screen",
}
MAX_BYTES = 200_000


def main(argv: list[str]) -> int:
    names = argv or list(TESTS)
    unknown = [name for name in names if name not in TESTS]
    if unknown:
        raise SystemExit(f"unknown editor(s) {unknown}; choose from {list(TESTS)}")
    OUT.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CODEGEN_LSP_SCREENSHOTS=str(OUT))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *(TESTS[name] for name in names)]
    done = subprocess.run(command, cwd=REPO, env=env)
    if done.returncode != 0:
        return done.returncode
    for name in names:
        picture = OUT / f"{name}.png"
        if not picture.is_file():
            print(f"{picture} was not written (did the test skip?)", file=sys.stderr)
            return 1
        size = picture.stat().st_size
        print(f"{picture.relative_to(REPO)}: {size // 1000} KB")
        if size > MAX_BYTES:
            print(f"{picture} is over {MAX_BYTES // 1000} KB", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
