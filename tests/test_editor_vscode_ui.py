"""The VS Code extension in a real VS Code (code-server 4.139.1, VS Code 1.139.1), installed from the .vsix that
`vsce package` builds, driven like a person through headless Chromium: the ghost text a person sees equals
`codegen-lsp complete` at the cursor, keys accept and ask for it, the file saved holds it, Go and JavaScript files
attach, the status item follows the server and its menu switches completions off and on, the health check runs
`codegen-lsp doctor`, and the commands and channels work.

One code-server for the module (the tests run in order, on one window, as one person's session). Needs what
editors/setup_code_server.sh installs (code-server, chromium, playwright) and a built extension; skips without.
Set CODEGEN_LSP_SCREENSHOTS=<folder> to keep a screenshot of the ghost text there (scripts/screenshots.py).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.code_server import CodeServer, Workbench, launch_chromium, missing_parts
from tests.editor_support import SCREEN_SETTINGS, ScreenCase, screen_case, screen_completion, server_env

pytestmark = [pytest.mark.editor, pytest.mark.slow]

GO = 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("hello")\n}\n'
JS = "function greet(name) {\n  return 'hello ' + name;\n}\n"
JSX = "export function Hello({ name }) {\n  return <p>Hello {name}</p>;\n}\n"


class Session:
    """The window, and the file behind its "CodeGen LSP" output channel (the server's log, as a person reads it)."""

    def __init__(self, workbench: Workbench, server: CodeServer, case: ScreenCase, gate: Path):
        self.workbench, self.server, self.case, self.gate = workbench, server, case, gate

    @property
    def page(self):  # noqa: ANN201 - playwright's Page
        return self.workbench.page

    def ghost(self, timeout_s: float = 60) -> str:
        """The ghost text once it shows; on a timeout, the server's log and a screenshot say why."""
        try:
            return self.workbench.wait_for_ghost_text(timeout_s)
        except Exception as error:
            shot = self.server.root / f"no-ghost-{time.monotonic():.0f}.png"
            self.page.screenshot(path=str(shot))
            log = self.log()[-5000:]
            raise AssertionError(f"no ghost text ({error}); screen: {shot}; server log:\n{log}") from None

    def log(self) -> str:
        channels = sorted(self.server.user_data.glob("logs/*/exthost*/codegen-lsp.codegen-lsp/CodeGen LSP.log"))
        return channels[-1].read_text(errors="replace") if channels else ""

    def status_item(self) -> tuple[str, str]:
        """The status bar item as displayed: its codicon's name and its words."""
        icon, words = self.page.eval_on_selector(STATUS_ITEM, STATUS_ITEM_JS)
        return icon, words

    def wait_for_status(self, icon: str, words: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                shown = self.status_item()
            except Exception:  # noqa: BLE001 - not drawn yet
                shown = None
            if shown == (icon, words):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"status item {shown}, expected {(icon, words)}; log:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def wait_for_log(self, pattern: str, count: int = 1, timeout_s: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            found = re.findall(pattern, self.log(), re.MULTILINE)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no {count} x {pattern!r} in the server's log:\n{self.log()[-4000:]}")
            time.sleep(0.2)


# The status bar item: VS Code draws `$(icon) words` as a codicon span and the words, in an anchor.
STATUS_ITEM = ".part.statusbar .statusbar-item:has(a:has-text('CodeGen'))"
STATUS_ITEM_JS = """
(item) => {
  const icon = item.querySelector('.codicon');
  const name = icon ? [...icon.classList].find(c => c.startsWith('codicon-') && !c.startsWith('codicon-modifier'))
                    : null;
  return [name ? name.slice('codicon-'.length) : '', item.textContent.replace(/\\u00a0/g, ' ').trim()];
}
"""


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    missing = missing_parts()
    if missing is not None:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    root = tmp_path_factory.mktemp("vscode-ui")
    workspace = root / "project"
    workspace.mkdir()
    case = screen_case(workspace)
    (workspace / "main.go").write_text(GO)
    (workspace / "app.js").write_text(JS)
    (workspace / "hello.jsx").write_text(JSX)
    (workspace / "inventory_again.py").write_text(case.typed_text)  # where the first suggestion is known
    # The server starts once `gate` exists, which the first test creates after typing: as on a slow machine,
    # the person's first keys reach VS Code before the language client runs.
    gate = root / "typed"
    launcher = root / "codegen-lsp"  # the serverCommand: `serve` waits for the gate, `doctor` does not
    launcher.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = serve ]; then while [ ! -e {gate} ]; do sleep 0.05; done; fi\n'
        f'exec {sys.executable} -m codegen_lsp.lsp_server "$@"\n'
    )
    launcher.chmod(0o755)
    machine_settings = {
        "codegenLsp.serverCommand": str(launcher),
        **{f"codegenLsp.{key}": value for key, value in SCREEN_SETTINGS.items()},
        "codegenLsp.logLevel": "debug",
    }
    with CodeServer(root, workspace, machine_settings, server_env()) as server, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1100, "height": 640})
        page.set_default_timeout(30_000)
        try:
            yield Session(Workbench(page), server, case, gate)
        finally:
            browser.close()


def test_first_suggestion_appears_without_typing_again(session: Session) -> None:
    """Open a Python file and type at once: the ghost text comes without another key, equal to the CLI's."""
    workbench, case = session.workbench, session.case
    workbench.open(session.server, case.path, "class Inventory")
    session.page.click(".part.editor .monaco-editor .view-lines")
    session.page.keyboard.press("Control+End")
    session.page.keyboard.type(case.typed)
    workbench.wait_for_text(case.typed_text.split("\n")[-1])
    session.wait_for_status("loading", "CodeGen loading")  # the client waits for its server
    session.gate.touch()

    ghost = session.ghost(timeout_s=120)
    session.wait_for_status("check", "CodeGen")
    # The keys were typed before the client started: the document opened on the server with them in it.
    opened = session.wait_for_log(r"opened file://\S+/inventory\.py \(python, (\d+) characters\)")
    assert int(opened[0]) == len(case.typed_text), "typed after the client started: this test proves nothing"
    assert ghost == screen_completion(case)
    if os.environ.get("CODEGEN_LSP_SCREENSHOTS"):
        session.page.screenshot(path=str(Path(os.environ["CODEGEN_LSP_SCREENSHOTS"]) / "vscode.png"))


def test_next_suggestion_fetches_alternatives_and_previous_comes_back(session: Session) -> None:
    """Alt+] on the ghost text shown while typing: VS Code asks again (Invoke), the extension asks the server for
    alternatives (codegenLsp/inlineCompletion), and a second, different candidate shows; Alt+[ shows the first."""
    workbench, page = session.workbench, session.page
    first = screen_completion(session.case)
    assert session.ghost() == first
    page.keyboard.press("Alt+BracketRight")  # editor.action.inlineSuggest.showNext
    session.wait_for_log(r"#\d+ alternatives inventory\.py:\d+:\d+: [2-9] item\(s\)", timeout_s=90)
    wait_until(lambda: workbench.has_ghost_text() and workbench.ghost_text() not in ("", first), "a second candidate")
    page.keyboard.press("Alt+BracketLeft")  # editor.action.inlineSuggest.showPrevious
    wait_until(lambda: workbench.has_ghost_text() and workbench.ghost_text() == first, "the first candidate again")


def test_escape_dismisses_and_alt_backslash_asks_again(session: Session) -> None:
    workbench, page = session.workbench, session.page
    page.keyboard.press("Escape")
    wait_until(lambda: not workbench.has_ghost_text(), "Escape to dismiss the ghost text")
    page.keyboard.press("Alt+Backslash")  # editor.action.inlineSuggest.trigger, bound by the extension
    assert session.ghost() == screen_completion(session.case)


def test_accept_word_then_tab_and_save(session: Session) -> None:
    workbench, case = session.workbench, session.case
    completion = screen_completion(case)
    cursor_line = case.typed_text.split("\n")[-1]

    # Ctrl+Right twice: VS Code accepts the leading space, then the next word.
    for key in ("Control+ArrowRight", "Control+ArrowRight"):
        session.page.keyboard.press(key)
    word = re.match(r"\s*\w+", completion).group(0)
    workbench.wait_for_text(cursor_line + word)
    assert workbench.lines()[case.line] == cursor_line + word
    assert session.ghost() == completion[len(word) :]

    session.page.keyboard.press("Tab")
    accepted = (cursor_line + completion).split("\n")
    wait_until(lambda: workbench.lines()[case.line : case.line + len(accepted)] == accepted, "the accepted text")
    session.page.keyboard.press("Control+S")
    expected = case.typed_text + completion
    deadline = time.monotonic() + 15
    while case.path.read_text() != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert case.path.read_text() == expected


def wait_until(condition, what: str, timeout_s: float = 30) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s} s for {what}")
        time.sleep(0.1)


def _open_quickly(workbench: Workbench, name: str, first_line: str) -> None:
    page = workbench.page
    page.keyboard.press("Escape")
    page.keyboard.press("Control+P")
    box = page.wait_for_selector(".quick-input-widget .quick-input-box input", state="visible")
    box.fill(name)
    page.click(f".quick-input-list .monaco-list-row[aria-label*='{name}']")
    workbench.wait_for_text(first_line)


@pytest.mark.parametrize(
    ("name", "language", "first_line", "typed"),
    [
        ("main.go", "go", "package main", "\tx := "),
        ("app.js", "javascript", "function greet", "const x = "),
        ("hello.jsx", "javascriptreact", "export function Hello", "const x = "),
    ],
)
def test_other_languages_attach(session: Session, name: str, language: str, first_line: str, typed: str) -> None:
    """The server receives the document with VS Code's language id, and VS Code asks it while typing; where
    the server answers with items (languages it completes), the ghost text shows."""
    workbench, page = session.workbench, session.page
    _open_quickly(workbench, name, first_line)
    text = (session.server.workspace / name).read_text()
    session.wait_for_log(rf"opened file://\S+/{re.escape(name)} \({language}, {len(text)} characters\)")
    page.click(".part.editor .monaco-editor .view-lines")
    page.keyboard.press("Control+End")
    page.keyboard.type(typed)
    page.keyboard.press("Alt+Backslash")  # asks for alternatives (Invoke)
    # The server's answer, as it logs it: "#N alternatives main.go:5:7: 1 item(s) in ..." or "no items: #N ...".
    kind = "(?:inline|alternatives)"
    answers = session.wait_for_log(rf"^.*#\d+ {kind} {re.escape(name)}:\d+:\d+: (?!superseded).*$", timeout_s=90)
    if any(re.search(r": [1-9]\d* item\(s\)", answer) for answer in answers):
        assert session.ghost() != ""


def test_status_item_and_toggle_off_sends_nothing_then_on_shows_ghost_text(session: Session) -> None:
    """The item follows the server's status on screen; off, no request reaches the server; on, ghost text again."""
    workbench, page = session.workbench, session.page
    _open_quickly(workbench, "inventory_again.py", "def add(self, name, count=1):")
    session.wait_for_status("check", "CodeGen")
    tooltip = page.eval_on_selector(STATUS_ITEM, "(item) => item.querySelector('a').getAttribute('aria-label')")
    assert "CodeGen" in tooltip
    page.hover(STATUS_ITEM)
    hover = page.wait_for_selector(".monaco-hover:has-text('Model: bundled')", timeout=15_000)
    assert "Device: cpu" in hover.text_content() and "Dtype: float32" in hover.text_content()
    page.mouse.move(10, 10)
    on_screen = session.server.root / "status-ready.png"
    page.locator(STATUS_ITEM).screenshot(path=str(on_screen))

    workbench.run_command("CodeGen LSP: Toggle Completions")
    session.wait_for_status("circle-slash", "CodeGen off")
    session.wait_for_log(r"switches: completions off")
    off_screen = session.server.root / "status-off.png"
    page.locator(STATUS_ITEM).screenshot(path=str(off_screen))
    assert off_screen.read_bytes() != on_screen.read_bytes()  # the item changed on screen, not only in the DOM

    page.click(".part.editor .monaco-editor .view-lines")
    page.keyboard.press("Control+End")
    page.keyboard.type(" ")
    page.keyboard.press("Backspace")
    page.keyboard.press("Alt+Backslash")
    time.sleep(2)  # what VS Code would ask in this time, the extension keeps (checked in the log below)
    assert not workbench.has_ghost_text()

    workbench.run_command("CodeGen LSP: Toggle Completions")
    session.wait_for_status("check", "CodeGen")
    log = session.log()
    between = log[log.rindex("switches: completions off") : log.rindex("switches: completions on")]
    # no request reached the server while off
    assert not re.search(r"inline|alternatives|switched off", between), between
    page.click(".part.editor .monaco-editor .view-lines")
    page.keyboard.press("Control+End")
    page.keyboard.press("Alt+Backslash")
    assert session.ghost(timeout_s=90) == screen_completion(session.case)


def test_status_menu_switches_a_language_off_and_on(session: Session) -> None:
    page = session.page
    page.keyboard.press("Escape")
    page.click(STATUS_ITEM)
    page.wait_for_selector(".quick-input-list .monaco-list-row[aria-label*='Snooze for 30 minutes']")
    rows = page.eval_on_selector_all(".quick-input-list .monaco-list-row", "rs => rs.map(r => r.ariaLabel)")
    assert rows[:6] == [  # each row: its codicon's name, then its words
        "circle-slash  Disable completions",
        "circle-slash  Disable for python",
        "circle-slash  Disable for this file",
        "clock  Snooze for 30 minutes",
        "output  Show output",
        "debug-restart  Restart server",
    ], rows
    assert rows[6].startswith("pulse  Run health check")
    page.click(".quick-input-list .monaco-list-row[aria-label*='Disable for python']")
    session.wait_for_status("circle-slash", "CodeGen off (python)")
    session.wait_for_log(r"switches: .*'disabledLanguages': \['python'\]")
    page.click(STATUS_ITEM)
    page.click(".quick-input-list .monaco-list-row[aria-label*='Enable for python']")
    session.wait_for_status("check", "CodeGen")


def test_restart_command_and_output_channel(session: Session) -> None:
    workbench, page = session.workbench, session.page
    _open_quickly(workbench, "inventory_again.py", "def add(self, name, count=1):")
    before = len(re.findall(r"initialize from code-server", session.log()))
    workbench.run_command("CodeGen LSP: Restart Server")
    session.wait_for_log(r"initialize from code-server", count=before + 1)
    session.wait_for_log(r"ready on cpu", count=before + 1, timeout_s=90)

    page.click(".part.editor .monaco-editor .view-lines")
    page.keyboard.press("Control+End")
    page.keyboard.press("Alt+Backslash")
    assert session.ghost(timeout_s=90) == screen_completion(session.case)

    workbench.run_command("CodeGen LSP: Show Output")

    def shows_the_log() -> bool:  # the panel shows the end of the channel, wrapped: one long line may fill it
        shown = re.sub(r"\s+", "", workbench.panel_text())
        return len(shown) >= 20 and shown in re.sub(r"\s+", "", session.log())

    wait_until(shows_the_log, "the server's log in the output panel")
    assert "codegen_lsp." in session.log()


def test_trace_setting_alone_fills_the_trace_channel(session: Session) -> None:
    workbench, page = session.workbench, session.page
    settings = session.server.workspace / ".vscode" / "settings.json"
    settings.parent.mkdir(exist_ok=True)
    settings.write_text(json.dumps({"codegenLsp.trace.server": "messages"}))
    time.sleep(2)  # VS Code notices the file
    page.click(".part.editor .monaco-editor .view-lines")
    page.keyboard.press("Control+End")
    page.keyboard.press("Alt+Backslash")
    session.ghost(timeout_s=60)
    workbench.run_command("CodeGen LSP: Show Trace")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.part.panel .view-line')].some(e => /\\[trace\\]/.test(e.textContent))"
    )
    # Tracing is on now; ask once more, in case VS Code applied the setting after the first request went out.
    page.click(".part.editor .monaco-editor .view-lines")
    page.keyboard.press("Control+End")
    page.keyboard.press("Alt+Backslash")

    def traced() -> bool:  # the file behind the channel: all of it, not only the lines on screen
        files = session.server.user_data.glob("logs/*/exthost*/output_logging_*/*CodeGen LSP Trace.log")
        sent = re.compile(r"Sending request '(textDocument|codegenLsp)/inlineCompletion")  # typed, or Alt+\
        return any(sent.search(f.read_text()) for f in files)

    wait_until(traced, "the inline request in the trace channel")


def test_health_check_runs_doctor_and_shows_its_lines(session: Session) -> None:
    workbench, page = session.workbench, session.page
    workbench.run_command("CodeGen LSP: Health Check")
    page.wait_for_selector(".notifications-toasts:has-text('codegen-lsp doctor: usable')", timeout=180_000)
    page.wait_for_function(  # the channel is shown
        "() => [...document.querySelectorAll('.part.panel .view-line')].some(e => /^(OK|WARN)\\s/.test(e.textContent))"
    )

    def written() -> str:  # the file behind the channel: all of it, not only the lines on screen
        files = session.server.user_data.glob("logs/*/exthost*/output_logging_*/*CodeGen LSP Health.log")
        return "".join(f.read_text() for f in files)

    wait_until(lambda: "codegen-lsp doctor: usable" in written(), "doctor's lines in the Health channel")
    lines = written().splitlines()
    assert any(line.startswith("OK model: bundled: ") for line in lines), lines
    assert any(line.startswith("OK python: ") for line in lines) and any("tokens/s" in line for line in lines)
