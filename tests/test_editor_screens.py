"""Neovim and Emacs on screen: each editor runs in tmux as a person would use it (keys in with send-keys, the
screen read back with capture-pane), with the bundled model, on examples/inventory.py cut after `def add(...):`.

A person types `        if`: the ghost text must show at the cursor (the cursor stays after `if`, the rest of
the line and the lines below are the completion `codegen-lsp complete` gives there, in the ghost's own colour);
then the keys the editor's README lists accept a word, a line, everything, or dismiss it. The buffer is read
through the editor's own server socket (nvim --remote-expr, emacsclient) to check what was inserted. Go and
JavaScript buffers attach: the server logs their didOpen with the editor's language id.

Set CODEGEN_LSP_SCREENSHOTS=<folder> to keep a picture of each screen with ghost text (scripts/screenshots.py).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.editor_support import EDITORS, SCREEN_SETTINGS, ScreenCase, screen_case, screen_completion, server_env
from tests.tmux_screen import TmuxScreen, save_screenshot, tmux

pytestmark = [pytest.mark.editor, pytest.mark.slow]

GO = 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("hello")\n}\n'
JS = "function greet(name) {\n  return 'hello ' + name;\n}\n"


def _need(tool: str) -> str:
    if tmux() is None:
        pytest.skip("tmux is not installed")
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (editors/setup_tests.sh)")
    return path


def _project(tmp_path: Path) -> ScreenCase:
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / "main.go").write_text(GO)
    (project / "app.js").write_text(JS)
    return screen_case(project)


def _wait(condition: Callable[[], bool], what: str, timeout_s: float = 30, show: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s} s for {what}: {show()}")
        time.sleep(0.1)


def _ghost_at_cursor(screen: TmuxScreen, line_before: str, completion: str, timeout_s: float = 120) -> None:
    """The screen shows `completion` after `line_before` on the cursor's row (and its further lines below), and
    the cursor sits right after `line_before`."""
    first, *rest = completion.split("\n")

    def shown() -> bool:
        row, column = screen.cursor()
        lines = screen.lines()
        row_text = lines[row].rstrip()
        if not first.strip() or not row_text.endswith((line_before + first).rstrip()):
            return False
        if column != len(row_text) - len(first.rstrip()):  # the cursor stays before the ghost
            return False
        below = lines[row + 1 : row + 1 + len(rest)]
        return all(b.rstrip().endswith(r.rstrip()) for b, r in zip(below, rest, strict=True))

    screen.wait(shown, f"the ghost text {completion!r} after {line_before!r} at the cursor", timeout_s)


def _ghost_coloured_apart(screen: TmuxScreen, typed_word: str, ghost_word: str) -> None:
    """On the cursor's row the ghost's first word has other SGR attributes than the typed text."""
    row, _ = screen.cursor()
    line = screen.ansi().split("\n")[row]
    assert re.search(r"\x1b\[[0-9;]*m\s*" + re.escape(ghost_word.strip()), line), repr(line)
    typed_at, ghost_at = line.find(typed_word), line.find(ghost_word.strip())
    assert 0 <= typed_at < ghost_at
    styles = re.findall(r"\x1b\[[0-9;]*m", line[typed_at:ghost_at])
    assert styles, f"the ghost text looks like the typed text: {line!r}"


def _screenshot(screen: TmuxScreen, name: str, title: str) -> None:
    folder = os.environ.get("CODEGEN_LSP_SCREENSHOTS")
    if folder:
        save_screenshot(screen, Path(folder) / name, title)


@dataclass(frozen=True)
class AcceptKeys:
    """The keys an editor's README lists for its ghost text."""

    word: str
    line: str
    everything: str
    dismiss: str


def _type_then_see_the_ghost(screen: TmuxScreen, editor, case: ScreenCase, completion: str, picture: str) -> None:
    """Type the case's text: the ghost text of `completion` shows at the cursor, in its own colour, and is not in
    the editor's buffer; a picture of the screen is kept when asked for (CODEGEN_LSP_SCREENSHOTS)."""
    screen.type(case.typed)
    _ghost_at_cursor(screen, case.typed_text.split("\n")[-1], completion)
    _ghost_coloured_apart(screen, "if", re.match(r"\s*\w+", completion).group(0))
    assert editor.buffer() == case.typed_text, "the ghost text is not in the buffer"
    _screenshot(screen, f"{picture}.png", f"{picture} inventory.py — codegen-lsp")


def _accept_word_line_rest_then_dismiss(
    screen: TmuxScreen, editor, case: ScreenCase, completion: str, keys: AcceptKeys
) -> None:
    """With the ghost text of `completion` shown after the typed line: accept a word, then the rest of the line,
    then everything, each checked in the editor's buffer (`editor.line()`, `editor.buffer()`); then on a new line
    type `if count` and dismiss the ghost text that comes."""
    first_word = re.match(r"\s*\w+", completion).group(0)
    first_line = completion.split("\n")[0]
    typed_line = case.typed_text.split("\n")[-1]

    screen.keys(keys.word)
    _wait(lambda: editor.line() == typed_line + first_word, f"{keys.word} to insert {first_word!r}", show=editor.line)
    _ghost_at_cursor(screen, typed_line + first_word, completion[len(first_word) :], 30)

    screen.keys(keys.line)
    _wait(
        lambda: editor.line() == typed_line + first_line,
        f"{keys.line} to insert the rest of the line",
        show=editor.line,
    )

    screen.keys(keys.everything)
    _wait(
        lambda: editor.buffer() == case.typed_text + completion,
        f"{keys.everything} to insert the rest",
        show=editor.buffer,
    )

    screen.keys("Enter")
    screen.type("if count")
    screen.wait(lambda: len(screen.lines()[screen.cursor()[0]].rstrip()) > screen.cursor()[1], "ghost text")
    screen.keys(keys.dismiss)
    screen.wait(
        lambda: screen.lines()[screen.cursor()[0]].rstrip().endswith("if count"),
        f"{keys.dismiss} to dismiss the ghost text",
    )
    assert editor.line().endswith("if count")


def _case_file(tmp_path: Path, server: list[str], **settings: object) -> Path:
    path = tmp_path / "case.json"
    path.write_text(json.dumps({"server": server, "settings": SCREEN_SETTINGS | {"logLevel": "debug"} | settings}))
    return path


SERVER = [sys.executable, "-m", "codegen_lsp.lsp_server", "serve", "--stdio"]


# -- Neovim --------------------------------------------------------------------------------------------------


class Nvim:
    def __init__(self, nvim: str, socket: Path):
        self.nvim, self.socket = nvim, socket

    def expr(self, expression: str) -> str:
        done = subprocess.run(
            [self.nvim, "--server", str(self.socket), "--remote-expr", expression],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    def line(self) -> str:
        return self.expr("getline('.')")

    def buffer(self) -> str:
        return self.expr("join(getline(1, '$'), \"\\n\")")

    def attached(self) -> int:
        return int(self.expr("luaeval('#vim.lsp.get_clients({bufnr = 0, name = \"codegen_lsp\"})')"))


def _ghost_after_cursor(screen: TmuxScreen) -> bool:
    row, column = screen.cursor()
    return len(screen.lines()[row].rstrip()) > column


def _inline_requests(log: Path) -> tuple[int, int]:
    """From the server's log lines in lsp.log: the inline requests it worked on (their `#N inline` tags), and
    the requests it answered empty because completions were switched off."""
    text = log.read_text(encoding="utf-8", errors="replace")
    return len(set(re.findall(r"#(\d+) inline ", text))), text.count("completions are switched off")


def _nvim_type_case_again(screen: TmuxScreen, nvim: Nvim, case: ScreenCase) -> None:
    """From Insert mode: back to the file as on disk (`:e!`), then type the case's line again."""
    screen.keys("Escape")
    screen.type(":e!")
    screen.keys("Enter")
    _wait(lambda: nvim.buffer() + "\n" == case.text, ":e! to reload the file", show=nvim.buffer)
    screen.keys("G", "o")
    screen.type(case.typed)


def _nvim_menu_switches_and_own_tab(screen: TmuxScreen, nvim: Nvim, case: ScreenCase, completion: str) -> None:
    """The popup menu hides the ghost text; `:CodegenLsp disable` shows in the statusline and typing then sends
    the server nothing (counted in its log); <Tab> is the person's own mapping (four spaces, where Vim's <Tab>
    would insert a tab); `:CodegenLsp enable` brings the ghost text back."""
    typed_line = case.typed_text.split("\n")[-1]
    log = Path(nvim.expr("luaeval('vim.lsp.get_log_path()')"))
    _nvim_type_case_again(screen, nvim, case)
    _ghost_at_cursor(screen, typed_line, completion, 60)
    screen.keys("C-n")  # keyword completion: the popup menu opens (completeopt menuone, noselect)
    _wait(lambda: nvim.expr("pumvisible()") == "1", "the popup menu")
    screen.wait(lambda: not _ghost_after_cursor(screen), "the ghost text to go while the menu is open")
    screen.keys("C-e")
    _wait(lambda: nvim.expr("pumvisible()") == "0", "the popup menu to close")

    screen.keys("Escape")
    screen.type(":CodegenLsp disable")
    screen.keys("Enter")
    screen.wait_for_text("CodeGen off")
    requests_before = _inline_requests(log)
    _nvim_type_case_again(screen, nvim, case)
    _wait(lambda: nvim.line() == typed_line, "the typed line", show=nvim.line)
    time.sleep(1.0)  # the plugin asks at once (no debounce of its own): it would have by now
    assert not _ghost_after_cursor(screen), screen.text()
    assert _inline_requests(log) == requests_before, (requests_before, _inline_requests(log))
    screen.keys("Tab")
    _wait(lambda: nvim.line() == typed_line + "    ", "<Tab> to run the person's own mapping", show=nvim.line)

    screen.keys("Escape")
    screen.type(":CodegenLsp enable")
    screen.keys("Enter")
    screen.wait_for_text("CodeGen ready")
    _nvim_type_case_again(screen, nvim, case)
    _ghost_at_cursor(screen, typed_line, completion, 60)
    assert _inline_requests(log)[0] > requests_before[0]  # the count counts


def test_nvim_ghost_text_on_screen(tmp_path: Path) -> None:
    nvim_path = _need("nvim")
    case = _project(tmp_path)
    socket = tmp_path / "nvim.sock"
    state = tmp_path / "state"
    env = server_env() | {
        "CODEGEN_LSP_TEST_CASE": str(_case_file(tmp_path, SERVER)),
        "XDG_STATE_HOME": str(state),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    init = EDITORS / "nvim" / "test" / "screen_init.lua"
    command = [nvim_path, "--clean", "-u", str(init), "--listen", str(socket), str(case.path)]
    completion = screen_completion(case, final_newline=True)
    with TmuxScreen(tmp_path / "tmux", command, env, width=100, height=30) as screen:
        screen.wait_for_text("class Inventory")
        nvim = Nvim(nvim_path, socket)
        _wait(lambda: nvim.attached() == 1, "the server to attach")
        screen.wait_for_text("CodeGen ready")  # the statusline
        history = json.loads(nvim.expr("json_encode(luaeval('_G.status_history'))"))
        assert "CodeGen ready" in history and any(h.startswith("CodeGen loading") for h in history), history
        assert history.index("CodeGen ready") > min(i for i, h in enumerate(history) if h.startswith("CodeGen loading"))
        screen.keys("G", "o")
        _type_then_see_the_ghost(screen, nvim, case, completion, "nvim")

        keys = AcceptKeys(word="M-Right", line="C-M-Right", everything="Tab", dismiss="C-]")
        _accept_word_line_rest_then_dismiss(screen, nvim, case, completion, keys)
        _nvim_menu_switches_and_own_tab(screen, nvim, case, completion)

        screen.keys("Escape")
        screen.type(":w")
        screen.keys("Enter")
        _wait(lambda: case.path.read_text() == nvim.buffer() + "\n", ":w to save the file")
        log = state / "nvim" / "lsp.log"
        for name, language in (("main.go", "go"), ("app.js", "javascript")):
            screen.type(f":e {name}")
            screen.keys("Enter")
            _wait(lambda: nvim.attached() == 1, f"the server to attach to {name}")
            opened = re.compile(rf"opened file://\S+/{re.escape(name)} \({language}, ")
            _wait(lambda o=opened: o.search(log.read_text()) is not None, f"the server to open {name} as {language}")


# -- Emacs ---------------------------------------------------------------------------------------------------


class Emacs:
    def __init__(self, socket_dir: Path):
        self.socket = socket_dir / "server"
        self.client = shutil.which("emacsclient")
        assert self.client is not None

    def eval(self, form: str) -> str:
        done = subprocess.run(
            [self.client, "-s", str(self.socket), "--eval", form], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def text(self, form: str) -> str:
        """A string-valued FORM, evaluated in the selected window's buffer."""
        printed = self.eval(f"(with-current-buffer (window-buffer (selected-window)) (codegen-lsp-test-base64 {form}))")
        # emacsclient prints the value last; anything Emacs said before it (a message) is on earlier lines
        return base64.b64decode(printed.splitlines()[-1].strip('"')).decode("utf-8")

    def buffer(self) -> str:
        return self.text("(buffer-substring-no-properties (point-min) (point-max))")

    def line(self) -> str:
        return self.text("(buffer-substring-no-properties (line-beginning-position) (line-end-position))")

    def managed(self) -> bool:
        form = "(with-current-buffer (window-buffer (selected-window)) (and (eglot-current-server) t))"
        return self.eval(form) == "t"

    def events(self) -> str:
        """Eglot's events buffer: the messages between Emacs and the server (its logMessages among them)."""
        events = (
            '(let ((b (cl-find-if (lambda (b) (string-match-p "\\\\`\\\\*EGLOT.*events\\\\*\\\\\'" (buffer-name b)))'
            ' (buffer-list)))) (if b (with-current-buffer b (buffer-string)) ""))'
        )
        return self.text(events)


def _emacs_lighters_until_ready(screen: TmuxScreen) -> list[str]:
    """The mode line's lighter (` CG:...`) each time it changed, from the start until it says ready."""
    history: list[str] = []

    def ready() -> bool:
        found = re.search(r"\bCG:(loading \d+%|\S+?)[ )]", _emacs_mode_line(screen))
        if found and (not history or history[-1] != found.group(0)[:-1]):
            history.append(found.group(0)[:-1])
        return bool(history) and history[-1] == "CG:ready"

    _wait(ready, "the mode line to say CG:ready", 120, lambda: f"{history}\n{screen.text()}")
    return history


def _emacs_mode_line(screen: TmuxScreen) -> str:
    """The selected window's mode line (the one naming a major mode, lowest on the screen)."""
    lines = [line for line in screen.lines() if re.match(r"^-[-:%*UTF0-9]+-", line)]
    return lines[-1] if lines else ""


def _emacs_command(screen: TmuxScreen, command: str) -> None:
    screen.keys("M-x")
    screen.type(command)
    screen.keys("Enter")


def _emacs_toggle_off_asks_nothing_then_on(screen: TmuxScreen, emacs: Emacs) -> None:
    """M-x codegen-lsp-toggle: the mode line says CG:off, and typing then asks nothing (no inline request in
    Eglot's events, none in the server's log lines there); toggled on, CG:ready and ghost text again."""
    _emacs_command(screen, "codegen-lsp-toggle")
    screen.wait(lambda: "CG:off" in _emacs_mode_line(screen), "the mode line to say CG:off")
    before = _inline_requests_in(emacs.events())
    screen.keys("BSpace")
    screen.type("t")
    _wait(lambda: emacs.line().endswith("if count"), "the typed t", show=emacs.line)
    # A round trip to the server: a request sent after the keystroke would be answered (and logged) before it.
    status = "(jsonrpc-request (eglot-current-server) :codegenLsp/status (codegen-lsp--status-params))"
    emacs.eval(f"(with-current-buffer (window-buffer (selected-window)) {status} t)")
    assert _inline_requests_in(emacs.events()) == before
    assert not _ghost_after_cursor(screen)
    _emacs_command(screen, "codegen-lsp-toggle")
    screen.wait(lambda: "CG:ready" in _emacs_mode_line(screen), "the mode line to say CG:ready again")
    _emacs_command(screen, "codegen-lsp-inline-suggest")
    ghost = lambda: emacs.text('(or (codegen-lsp-inline-text) "")')  # noqa: E731
    _wait(lambda: ghost() != "", "ghost text after switching on", 60, screen.text)
    below = lambda: screen.lines()[screen.cursor()[0] + 1].strip()  # noqa: E731 - the file ends at the cursor's line
    screen.wait(lambda: _ghost_after_cursor(screen) or below() != "", "the ghost text on the screen")
    assert _inline_requests_in(emacs.events())[0] > before[0]
    dismissed = lambda: ghost() == "" and not _ghost_after_cursor(screen) and below() == ""  # noqa: E731
    _emacs_quit_until(screen, dismissed, "C-g to dismiss the ghost text")


def _emacs_quit_until(screen: TmuxScreen, condition: Callable[[], bool], what: str, presses: int = 3) -> None:
    """C-g until `condition` holds. A C-g that reaches Emacs while it is busy (here: still serving the emacsclient
    call that read Eglot's events, under a loaded CPU) quits what it is doing instead of running the command
    bound to it, as it would for a person, who presses it again."""
    for press in range(presses):
        screen.keys("C-g")
        try:
            _wait(condition, what, timeout_s=10)
            return
        except AssertionError:
            if press == presses - 1:
                raise AssertionError(f"{what}, pressed {presses} times: {screen.text()}") from None


def _inline_requests_in(events: str) -> tuple[int, int]:
    """From Eglot's events: inline requests Emacs sent, and those the server logged working on (`#N inline`)."""
    return events.count('"textDocument/inlineCompletion"'), len(set(re.findall(r"#(\d+) inline ", events)))


def _emacs_diagnose(screen: TmuxScreen) -> None:
    """M-x codegen-lsp-diagnose shows `codegen-lsp doctor`'s lines and its verdict; C-x 1 closes it."""
    _emacs_command(screen, "codegen-lsp-diagnose")
    screen.wait(lambda: "codegen-lsp doctor: usable" in screen.text(), "the doctor's verdict", 180)
    assert re.search(r"^\s*\d+ OK python: ", screen.text(), re.M), screen.text()  # (after the line numbers)
    assert re.search(r"^\s*\d+ OK model: bundled", screen.text(), re.M), screen.text()
    screen.keys("C-x", "1")
    screen.wait(lambda: "doctor: usable" not in screen.text(), "C-x 1 to close the doctor's window")


def test_emacs_ghost_text_on_screen(tmp_path: Path) -> None:
    emacs_path = _need("emacs")
    _need("emacsclient")
    case = _project(tmp_path)
    sockets = tmp_path / "emacs-server"
    sockets.mkdir(mode=0o700)
    env = server_env() | {
        # Emacs registers only the modes of languages the server completes (the bundled model: Python)
        "CODEGEN_LSP_TEST_CASE": str(_case_file(tmp_path, SERVER, languages=["python", "go", "javascript"])),
        "CODEGEN_LSP_EMACS_SOCKET": str(sockets),
        "HOME": str(tmp_path / "home"),
    }
    init = EDITORS / "emacs" / "test" / "screen-init.el"
    command = [emacs_path, "-nw", "-Q", "-l", str(init), str(case.path)]
    completion = screen_completion(case)  # M-> goes past the final newline: none after the typed line
    with TmuxScreen(tmp_path / "tmux", command, env, width=100, height=32) as screen:
        screen.wait_for_text("class Inventory")
        emacs = Emacs(sockets)
        history = _emacs_lighters_until_ready(screen)
        assert history.index("CG:ready") > min(i for i, h in enumerate(history) if h.startswith("CG:loading")), history
        _wait(lambda: (sockets / "server").exists() and emacs.managed(), "Eglot to manage the buffer", 60)
        screen.keys("M->")
        _type_then_see_the_ghost(screen, emacs, case, completion, "emacs")

        keys = AcceptKeys(word="M-Right", line="M-Down", everything="Tab", dismiss="C-g")
        _accept_word_line_rest_then_dismiss(screen, emacs, case, completion, keys)
        _emacs_toggle_off_asks_nothing_then_on(screen, emacs)
        _emacs_diagnose(screen)

        screen.keys("C-x", "C-s")
        _wait(lambda: case.path.read_text() == emacs.buffer(), "C-x C-s to save the file")
        for name, language in (("main.go", "go"), ("app.js", "javascript")):
            screen.keys("C-x", "C-f")
            screen.type(str(case.path.parent / name))
            screen.keys("Enter")
            managed = lambda n=name: emacs.text("(buffer-name)") == n and emacs.managed()  # noqa: E731
            _wait(managed, f"Eglot to manage {name}", 60, screen.text)
            opened = re.compile(rf"opened file://\S+/{re.escape(name)} \({language}, ")
            _wait(lambda o=opened: o.search(emacs.events()) is not None, f"the server to open {name} as {language}")
