"""The Emacs package (editors/emacs/codegen-lsp.el) in a real Emacs with Eglot: ghost text from
textDocument/inlineCompletion equals the CLI's completion, TAB / M-<right> / M-<down> / C-g work, and (ghost
text off) Eglot's completion-at-point inserts the same completion. Multi-line suggestions run against the
scripted server in tests/editor_support.py.

Needs `emacs` (28+) with Eglot (Debian: emacs-nox elpa-eglot; built into Emacs 29+); skips without them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codegen_lsp.lsp_server.settings import Settings, parse_settings, to_wire
from tests.editor_support import EDITORS, editor_case, fake_case, server_env

EMACS_DIR = EDITORS / "emacs"
ELPA = "/usr/share/emacs/site-lisp/elpa/*"
LOAD_EGLOT = (
    f'(progn (dolist (d (file-expand-wildcards "{ELPA}")) (add-to-list (quote load-path) d))'
    " (require (quote package)) (package-initialize) (require (quote eglot)))"
)

pytestmark = pytest.mark.editor


def _emacs() -> str:
    emacs = shutil.which("emacs")
    if emacs is None:
        pytest.skip("emacs is not installed (apt-get install emacs-nox elpa-eglot; editors/setup_tests.sh)")
    done = subprocess.run([emacs, "--batch", "-Q", "--eval", LOAD_EGLOT], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.skip(f"Emacs has no Eglot (apt-get install elpa-eglot): {done.stderr.strip()[-300:]}")
    return emacs


def test_settings_block_matches_the_server() -> None:
    """codegen-lsp.el's defcustoms are rendered from lsp_server/settings.py: one source of truth."""
    done = subprocess.run(
        [sys.executable, str(EMACS_DIR / "sync_settings.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_package_byte_compiles_cleanly(tmp_path: Path) -> None:
    emacs = _emacs()
    source = tmp_path / "codegen-lsp.el"
    shutil.copy(EMACS_DIR / "codegen-lsp.el", source)
    done = subprocess.run(
        [emacs, "--batch", "-Q", "--eval", LOAD_EGLOT, "--eval", "(setq byte-compile-error-on-warn t)",
         "-f", "batch-byte-compile", str(source)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_initialization_options(tmp_path: Path) -> None:
    """The JSON sent as initializationOptions: every server setting, false as false, null as null, the
    patterns as a list; the server reads it without a warning."""
    emacs = _emacs()
    done = subprocess.run(
        [emacs, "--batch", "-Q", "--eval", LOAD_EGLOT, "-L", str(EMACS_DIR), "--eval",
         "(progn (require 'codegen-lsp) (setq codegen-lsp-cuda-graphs nil codegen-lsp-max-new-tokens 8)"
         " (princ (jsonrpc--json-encode (codegen-lsp-settings))))"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sent = json.loads(done.stdout)
    assert set(sent) == set(to_wire(Settings()))
    settings, warnings = parse_settings(sent)
    assert warnings == []
    assert to_wire(settings) == to_wire(Settings()) | {"cudaGraphs": False, "maxNewTokens": 8}


def _run(emacs: str, case_file: Path, tmp_path: Path) -> None:
    (tmp_path / "home").mkdir(exist_ok=True)
    env = server_env() | {"CODEGEN_LSP_TEST_CASE": str(case_file), "HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [emacs, "--batch", "-Q", "-l", str(EMACS_DIR / "test" / "codegen-lsp-test.el")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-8000:]
    assert "PASSED" in done.stdout, output[-8000:]


def test_ghost_text_accept_dismiss_and_completion_at_point(tiny_model_dir: Path, tmp_path: Path) -> None:
    emacs = _emacs()
    case = editor_case(tiny_model_dir)
    _run(emacs, case.write_json(tmp_path / "case.json"), tmp_path)


def test_multiline_suggestions_with_scripted_server(tmp_path: Path) -> None:
    """A multi-line overlay, accept-line, and completion-at-point inserting several lines."""
    emacs = _emacs()
    case = fake_case(tmp_path)
    assert "\n" in case.completion
    _run(emacs, case.write_json(tmp_path / "case.json"), tmp_path)
