"""The Emacs package (editors/emacs/codegen-lsp.el) in a real Emacs with Eglot: ghost text from
textDocument/inlineCompletion equals the CLI's completion, TAB / M-<right> / M-<down> / C-g work, and (ghost
text off) Eglot's completion-at-point inserts the same completion. Multi-line suggestions run against the
scripted server in tests/editor_support.py. The ERT tests (editors/emacs/test/codegen-lsp-ert.el: loading,
registration, lighter, keys and menus), pylsp beside codegen-lsp through rass (codegen-lsp-beside-test.el),
package-lint and checkdoc, and the README's snippets as written.

Needs `emacs` (28+) with Eglot (Debian: emacs-nox elpa-eglot; built into Emacs 29+); skips without them. The
pylsp test needs Debian's python3-pylsp and python3-pyflakes and rassumfrassum (the test extra); the company
test elpa-company; the lint test elpa-package-lint (editors/setup_tests.sh installs them).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codegen_lsp.lsp_server.languages import languages_for_model
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
    """codegen-lsp.el's defcustoms are rendered from lsp_server/settings/schema.py: one source of truth."""
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


def _batch(emacs: str, *args: str, env: dict[str, str] | None = None, timeout: int = 120, quick: str = "-Q") -> str:
    done = subprocess.run([emacs, "--batch", quick, *args], capture_output=True, text=True, env=env, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-8000:]
    return output


def test_ert_loading_registration_lighter_keys_and_menus() -> None:
    """editors/emacs/test/codegen-lsp-ert.el: no side effects on load, the user's server kept, only the
    model's languages, the lighter per state, TAB, typing into the ghost text, company, cycling, off."""
    emacs = _emacs()
    env = dict(os.environ) | {"CODEGEN_LSP_TEST_PYTHON": sys.executable}
    output = _batch(
        emacs, "-l", "ert", "-l", str(EMACS_DIR / "test" / "codegen-lsp-ert.el"), "-f", "ert-run-tests-batch-and-exit",
        env=env,
    )  # fmt: skip
    assert re.search(r"Ran \d+ tests, (\d+) results as expected, 0 unexpected", output), output[-4000:]
    assert "skipped" not in output.split("Ran ")[-1], output[-4000:]


@pytest.mark.parametrize(
    "model",
    ["bundled", "Salesforce/codegen-350M-mono", "Salesforce/codegen-2B-multi", "Salesforce/codegen-6B-nl",
     "/models/codegen-350M-mono/", "/models/my-model", "Salesforce/codegen2-1B_mono"],
)  # fmt: skip
def test_completed_languages_follow_the_server(model: str) -> None:
    """The modes codegen-lsp-register takes are those of the languages the server completes for the model."""
    emacs = _emacs()
    form = (
        f"(progn (require 'codegen-lsp) (setq codegen-lsp-model {json.dumps(model)})"
        " (princ (json-encode (codegen-lsp-completed-languages))))"
    )
    output = _batch(emacs, "--eval", LOAD_EGLOT, "-L", str(EMACS_DIR), "--eval", form)
    assert sorted(json.loads(output.strip().splitlines()[-1])) == sorted(languages_for_model(model))


def test_package_lint_and_checkdoc() -> None:
    """package-lint (Debian's elpa-package-lint) and checkdoc find nothing but what offline and old
    package-lint cannot know: no archive index here (eglot and jsonrpc are on GNU ELPA), and package-lint 0.16
    predates Emacs 28's release."""
    emacs = _emacs()
    installed = sorted(Path("/usr/share/emacs/site-lisp/elpa").glob("package-lint-*"))
    if not installed:
        pytest.skip("package-lint is not installed (apt-get install elpa-package-lint)")
    version = tuple(int(part) for part in installed[-1].name.rsplit("-", 1)[1].split("."))
    before_emacs_28 = "t" if version < (0, 17) else "nil"
    form = """(progn
  (require 'package-lint) (require 'checkdoc)
  (setq package-archive-contents
        (list (list 'eglot (package-desc-create :name 'eglot :version '(1 9) :archive "gnu"))
              (list 'jsonrpc (package-desc-create :name 'jsonrpc :version '(1 0 14) :archive "gnu"))))
  (with-current-buffer (find-file-noselect (car command-line-args-left))
    (dolist (issue (package-lint-buffer))
      (unless (and BEFORE-EMACS-28
                   (string-match-p "uninstallable in all released Emacs versions" (nth 3 issue)))
        (princ (format "package-lint %s:%s: %s\n" (nth 0 issue) (nth 1 issue) (nth 3 issue)))))
    (let ((checkdoc-diagnostic-buffer "*checkdoc*"))
      (checkdoc-current-buffer t)
      (with-current-buffer "*checkdoc*"
        (goto-char (point-min))
        (while (re-search-forward "^codegen-lsp.el:.*$" nil t)
          (princ (format "checkdoc %s\n" (match-string 0))))))))"""
    form = form.replace("BEFORE-EMACS-28", before_emacs_28)
    output = _batch(emacs, "--eval", LOAD_EGLOT, "--eval", form, str(EMACS_DIR / "codegen-lsp.el"))
    problems = [line for line in output.splitlines() if line.startswith(("package-lint ", "checkdoc "))]
    assert problems == [], output


def _rass() -> list[str]:
    done = subprocess.run([sys.executable, "-m", "rassumfrassum", "--version"], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip("rassumfrassum is not installed (pip install -e '.[test]')")
    return [sys.executable, "-m", "rassumfrassum", "--log-level", "info"]


def test_pylsp_beside_codegen_lsp(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Debian's pylsp and codegen-lsp in the same buffers behind rass: hover and diagnostics from pylsp, ghost
    text from ours; toggled off, no request leaves Emacs or reaches the server; on again, ghost text again. And
    where Debian's clangd is installed, a C buffer: hover and a diagnostic from clangd, inline completions from
    ours."""
    emacs = _emacs()
    rass = _rass()
    if shutil.which("pylsp") is None:
        pytest.skip("pylsp is not installed (apt-get install python3-pylsp python3-pyflakes)")
    case = editor_case(tiny_model_dir)
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    path = project / Path(case.path).name
    path.write_text(Path(case.path).read_text(encoding="utf-8"), encoding="utf-8")
    case_file = dataclasses.replace(case, path=str(path)).write_json(tmp_path / "case.json")
    data = json.loads(case_file.read_text(encoding="utf-8")) | {"rass": rass}
    case_file.write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "home").mkdir()
    env = server_env() | {"CODEGEN_LSP_TEST_CASE": str(case_file), "HOME": str(tmp_path / "home")}
    output = _batch(
        emacs, "-l", "ert", "-l", str(EMACS_DIR / "test" / "codegen-lsp-beside-test.el"),
        "-f", "ert-run-tests-batch-and-exit", env=env, timeout=400,
    )  # fmt: skip
    ran = re.search(r"Ran (\d+) tests, (\d+) results as expected, 0 unexpected", output)
    assert ran and ran.group(1) == "2", output[-8000:]
    if shutil.which("clangd"):
        assert "2 results as expected" in output and "skipped" not in output.split("Ran ")[-1], output[-8000:]


def test_rass_preset_routes_ours_to_codegen_lsp() -> None:
    """The preset's two decisions: which requests are codegen-lsp's, and whose initializationOptions."""
    _rass()
    spec = importlib.util.spec_from_file_location("codegen_lsp_rass", EMACS_DIR / "codegen_lsp_rass.py")
    preset = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(preset)
    assert preset.is_ours("textDocument/inlineCompletion", {})
    assert preset.is_ours("codegenLsp/inlineCompletion", {})
    assert preset.is_ours("codegenLsp/status", None)
    assert preset.is_ours("workspace/executeCommand", {"command": "codegenLsp.toggle"})
    assert not preset.is_ours("workspace/executeCommand", {"command": "pylsp.something"})
    assert not preset.is_ours("textDocument/hover", {})
    assert not preset.is_ours("textDocument/completion", {})
    options = {"model": "bundled", "codegenLspOthers": {"pylsp": {"plugins": {}}}}
    assert preset.split_initialization_options(options, ours=True) == {"model": "bundled"}
    assert preset.split_initialization_options(options, ours=False) == {"pylsp": {"plugins": {}}}
    assert preset.split_initialization_options({"model": "bundled"}, ours=False) is None
    assert preset.servers() == []
    assert issubclass(preset.logic_class(), preset.LspLogic)


def _readme_snippets() -> list[str]:
    return re.findall(r"```elisp\n(.+?)\n```", (EMACS_DIR / "README.md").read_text(encoding="utf-8"), re.DOTALL)


CHECK_INSTALL = """(progn
  (find-file (getenv "CODEGEN_LSP_TEST_FILE"))
  (run-hooks 'post-command-hook) ; eglot-ensure connects after the command that opened the file
  (let ((deadline (+ (float-time) 60)))
    (while (and (not (and (eglot-managed-p) (eglot-current-server))) (< (float-time) deadline))
      (accept-process-output nil 0.05)))
  (princ (format "server class: %s\\nghost text mode: %s\\n"
                 (and (eglot-current-server) (eieio-object-class (eglot-current-server)))
                 (bound-and-true-p codegen-lsp-inline-mode)))
  (when (eglot-current-server)
    (set-buffer-modified-p nil)
    (eglot-shutdown (eglot-current-server) nil 10)))"""


@pytest.mark.parametrize("index", [0, 1], ids=["plain", "use-package"])
def test_readme_install_snippet_runs_as_written(index: int, tmp_path: Path) -> None:
    """The README's init.el and use-package forms, as written (with /path/to/codegen-lsp this checkout), in an
    Emacs 28 started as Debian's is (site-start, then the installed packages: elpa-eglot, elpa-use-package):
    opening a Python file in a project starts codegen-lsp through Eglot, with ghost text on."""
    emacs = _emacs()
    if index == 1 and not list(Path("/usr/share/emacs/site-lisp/elpa").glob("use-package-*")):
        pytest.skip("use-package is not installed (apt-get install elpa-use-package)")
    if shutil.which("codegen-lsp") is None:
        pytest.skip("codegen-lsp is not on PATH (pip install -e .)")
    snippet = _readme_snippets()[index]
    init = tmp_path / "init.el"
    init.write_text(snippet.replace("/path/to/codegen-lsp", str(EDITORS.parent)), encoding="utf-8")
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / "hello.py").write_text("def hello():\n    return 1\n", encoding="utf-8")
    (tmp_path / "home").mkdir()
    env = server_env() | {"HOME": str(tmp_path / "home"), "CODEGEN_LSP_TEST_FILE": str(project / "hello.py")}
    output = _batch(
        emacs, "--eval", "(package-activate-all)", "-l", str(init), "--eval", CHECK_INSTALL, env=env,
        timeout=180, quick="-q",
    )  # fmt: skip
    assert "server class: codegen-lsp-server" in output, output[-4000:]
    assert "ghost text mode: t" in output, output[-4000:]


def test_readme_package_vc_snippet_as_far_as_emacs_28_goes(tmp_path: Path) -> None:
    """Emacs 28 has no package-vc: the snippet names the package's own URL and a :lisp-dir holding the package
    and its preset, and the autoloads package-vc generates there load the package on codegen-lsp-register."""
    emacs = _emacs()
    (snippet,) = [s for s in _readme_snippets() if "package-vc-install" in s]
    url = re.search(r':url "([^"]+)"', snippet).group(1)
    lisp_dir = re.search(r':lisp-dir "([^"]+)"', snippet).group(1)
    header = re.search(r"^;; URL: (\S+)$", (EMACS_DIR / "codegen-lsp.el").read_text(encoding="utf-8"), re.M)
    assert url == header.group(1)
    checkout = tmp_path / "elpa" / "codegen-lsp"
    shutil.copytree(EDITORS.parent / lisp_dir, checkout / lisp_dir, ignore=shutil.ignore_patterns("test"))
    assert (checkout / lisp_dir / "codegen_lsp_rass.py").is_file()
    folder, autoloads = json.dumps(str(checkout / lisp_dir)), json.dumps(str(checkout / lisp_dir / "x-autoloads.el"))
    form = f"""(progn
  (add-to-list 'load-path {folder})
  (make-directory-autoloads {folder} {autoloads})
  (load {autoloads} nil t)
  (princ (format "autoloaded: %s\\n" (autoloadp (symbol-function 'codegen-lsp-ensure))))
  (codegen-lsp-register)
  (princ (format "loaded: %s\\nregistered: %s\\npreset: %s\\n" (featurep 'codegen-lsp)
                 (and codegen-lsp--entries (memq (car codegen-lsp--entries) eglot-server-programs) t)
                 (codegen-lsp--preset))))"""
    output = _batch(emacs, "--eval", LOAD_EGLOT, "--eval", form)
    assert "autoloaded: t" in output, output
    assert "loaded: t" in output and "registered: t" in output, output
    assert f"preset: {checkout / lisp_dir / 'codegen_lsp_rass.py'}" in output, output
