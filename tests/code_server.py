"""A real VS Code (code-server, installed by editors/setup_code_server.sh) in headless Chromium, for the UI test
and the screenshot script.

`CodeServer` starts code-server on 127.0.0.1 with fresh user-data and extensions folders, this checkout's
extension installed into the latter from the .vsix that plain `vsce package` builds (as a person installs it), and
settings in `<user-data>/Machine/settings.json` (in code-server the window is remote: machine-scoped settings
such as `codegenLsp.serverCommand` are honoured only there or in the workspace). `Workbench` is the page, with
the few things a person does: open a file, type, read the ghost text, press keys, run a command.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.editor_support import EDITORS

VSCODE = EDITORS / "vscode"
CHROMIUM = "/usr/bin/chromium"
_built: list[Path] = []  # the .vsix this process built


def code_server_launcher() -> Path | None:
    """The launcher editors/setup_code_server.sh writes, if it is installed (CODEGEN_LSP_CODE_SERVER overrides)."""
    if os.environ.get("CODEGEN_LSP_CODE_SERVER"):
        return Path(os.environ["CODEGEN_LSP_CODE_SERVER"])
    cache = Path(os.environ.get("CODEGEN_LSP_TEST_CACHE", Path.home() / ".cache" / "codegen-lsp-test"))
    launcher = cache / "code-server" / "bin" / "code-server"
    return launcher if (cache / "code-server" / "installed").is_file() and os.access(launcher, os.X_OK) else None


def missing_parts() -> str | None:
    """Why the UI test cannot run here, or None."""
    if code_server_launcher() is None:
        return "code-server is not installed (editors/setup_code_server.sh)"
    if not Path(CHROMIUM).is_file():
        return f"{CHROMIUM} is missing (apt-get install chromium; editors/setup_code_server.sh)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install playwright; editors/setup_code_server.sh)"
    if not (VSCODE / "node_modules" / ".bin" / "vsce").is_file():
        return "the extension's tools are not installed (npm ci in editors/vscode; editors/setup_tests.sh)"
    return None


def build_vsix(folder: Path) -> Path:
    """`npx vsce package` in editors/vscode, as its README says (offline: vsce is a dev dependency; it runs tsc
    first): the .vsix a person installs. Built once per test process, from the checkout as it is."""
    if not _built or not _built[0].is_file():
        package = json.loads((VSCODE / "package.json").read_text())
        vsix = folder / f"{package['name']}-{package['version']}.vsix"
        done = subprocess.run(
            [shutil.which("npx") or "npx", "vsce", "package", "--out", str(vsix)],
            cwd=VSCODE,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0 and vsix.is_file(), f"vsce package failed:\n{done.stdout}\n{done.stderr}"
        _built[:] = [vsix]
    return _built[0]


def install_vsix(vsix: Path, extensions_dir: Path, user_data: Path) -> Path:
    """`code-server --install-extension the.vsix` into the fresh extensions folder: where it landed."""
    launcher = code_server_launcher()
    assert launcher is not None
    done = subprocess.run(
        [str(launcher), "--extensions-dir", str(extensions_dir), "--user-data-dir", str(user_data),
         "--install-extension", str(vsix)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, f"code-server --install-extension failed:\n{done.stdout}\n{done.stderr}"
    package = json.loads((VSCODE / "package.json").read_text())
    (installed,) = extensions_dir.glob(f"{package['publisher']}.{package['name']}-{package['version']}*")
    return installed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Quiet, predictable windows: no welcome page, no AI side bar, no auto-save (the test saves), no updates.
USER_SETTINGS: dict[str, Any] = {
    "files.autoSave": "off",
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": False,
    "chat.disableAIFeatures": True,
    "workbench.secondarySideBar.defaultVisibility": "hidden",
    "extensions.autoCheckUpdates": False,
    "extensions.autoUpdate": False,
    "extensions.ignoreRecommendations": True,
    "telemetry.telemetryLevel": "off",
    "editor.minimap.enabled": False,
    "workbench.colorTheme": "Default Dark Modern",
    "window.commandCenter": False,
    "editor.fontSize": 15,
}


class CodeServer:
    """code-server for one folder; use as a context manager (stops it and its process group)."""

    def __init__(self, root: Path, workspace: Path, machine_settings: dict[str, Any], env: dict[str, str]):
        launcher = code_server_launcher()
        assert launcher is not None, missing_parts()
        self.root, self.workspace = root, workspace
        self.user_data = root / "user-data"
        (self.user_data / "Machine").mkdir(parents=True)
        (self.user_data / "User").mkdir(parents=True)
        (self.user_data / "Machine" / "settings.json").write_text(json.dumps(machine_settings, indent=1))
        (self.user_data / "User" / "settings.json").write_text(json.dumps(USER_SETTINGS, indent=1))
        self.vsix = build_vsix(root)
        self.extension = install_vsix(self.vsix, root / "extensions", self.user_data)
        (root / "tmp").mkdir()
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "code-server.log"
        command = [
            str(launcher), "--config", "/dev/null", "--bind-addr", f"127.0.0.1:{self.port}", "--auth", "none",
            "--user-data-dir", str(self.user_data), "--extensions-dir", str(root / "extensions"),
            "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust",
            "--disable-getting-started-override", str(workspace),
        ]  # fmt: skip
        env = env | {
            "XDG_DATA_HOME": str(root / "data"),
            "XDG_CONFIG_HOME": str(root / "config"),
            "TMPDIR": str(root / "tmp"),
        }
        self.process = subprocess.Popen(
            command, stdout=self.log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def wait_healthy(self, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/healthz", timeout=1).read()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise AssertionError(f"code-server exited:\n{self.log.read_text()[-3000:]}") from None
                if time.monotonic() > deadline:
                    raise AssertionError(f"no /healthz:\n{self.log.read_text()[-3000:]}") from None
                time.sleep(0.1)

    def open_url(self, path: Path) -> str:
        """The workbench on the folder with `path` open in an editor."""
        payload = json.dumps([["openFile", f"vscode-remote://127.0.0.1:{self.port}{path}"]])
        return f"{self.url}/?folder={urllib.parse.quote(str(self.workspace))}&payload={urllib.parse.quote(payload)}"

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        # The extension host's server (its own session) gets stdin EOF and exits; give it a moment.
        time.sleep(0.5)

    def __enter__(self) -> CodeServer:
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
    )


EDITOR = ".monaco-workbench .part.editor .monaco-editor"


class Workbench:
    """The VS Code window in a Playwright page."""

    def __init__(self, page: Any):
        self.page = page

    def open(self, server: CodeServer, path: Path, first_line: str, timeout_s: float = 90) -> None:
        self.page.goto(server.open_url(path))
        self.page.wait_for_selector(".monaco-workbench", timeout=timeout_s * 1000)
        self.wait_for_text(first_line, timeout_s)

    def wait_for_text(self, text: str, timeout_s: float = 30) -> None:
        """Until a line of the document (ghost text left out) holds `text`."""
        self.page.wait_for_function(
            f"([editor, text]) => ({LINES_JS})(editor).some(line => line.includes(text))",
            arg=[EDITOR, text],
            timeout=timeout_s * 1000,
        )

    def lines(self) -> list[str]:
        """The visible lines of the active editor, top to bottom (ghost text included, as displayed)."""
        return self.page.evaluate(LINES_JS, EDITOR)

    def ghost_text(self) -> str:
        """The ghost text shown: the rest of the cursor's line, then the lines shown below it."""
        return self.page.evaluate(GHOST_TEXT_JS, EDITOR)

    def wait_for_ghost_text(self, timeout_s: float = 60) -> str:
        self.page.wait_for_selector(f"{EDITOR} .ghost-text-decoration, {EDITOR} .ghost-text", timeout=timeout_s * 1000)
        time.sleep(0.3)  # let a multi-line suggestion finish rendering
        return self.ghost_text()

    def has_ghost_text(self) -> bool:
        return self.page.query_selector(f"{EDITOR} .ghost-text-decoration, {EDITOR} .ghost-text") is not None

    def run_command(self, title: str) -> None:
        """F1, the command's title, Enter: as a person runs a command."""
        self.page.keyboard.press("F1")
        box = self.page.wait_for_selector(".quick-input-widget .quick-input-box input", state="visible")
        box.fill(f">{title}")
        self.page.wait_for_selector(f".quick-input-list .monaco-list-row[aria-label*='{title}']", timeout=15000)
        self.page.keyboard.press("Enter")

    def panel_text(self) -> str:
        """The text of the panel's editor (the output view), as displayed."""
        return "\n".join(
            self.page.eval_on_selector_all(
                ".part.panel .monaco-editor .view-line",
                "es => es.sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))"
                ".map(e => e.textContent.replace(/\\u00a0/g, ' '))",
            )
        )


# Monaco draws the rest of the cursor's line as `.ghost-text-decoration` spans in that line, and the further
# lines as `.view-line`s of `.ghost-text` spans in a view zone below it.
GHOST_TEXT_JS = """
(editor) => {
  const clean = (s) => s.replace(/\\u00a0/g, ' ');
  const inline = [...document.querySelectorAll(editor + ' .ghost-text-decoration')]
    .map(e => clean(e.textContent)).join('');
  const below = [...document.querySelectorAll(editor + ' .view-line')]
    .filter(l => l.querySelector('.ghost-text')).map(l => clean(l.textContent));
  return [inline, ...below].join('\\n');
}
"""

# The document's visible lines, top to bottom: view lines outside the ghost text's zone, without its spans.
LINES_JS = """
(editor) => [...document.querySelectorAll(editor + ' .view-lines > .view-line')]
  .sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))
  .map(e => [...e.querySelectorAll('span > span')].filter(s => !s.classList.contains('ghost-text-decoration'))
             .map(s => s.textContent).join('').replace(/\\u00a0/g, ' '))
"""
