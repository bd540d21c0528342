"""A terminal editor in tmux, looked at as a person does: keys in with `send-keys`, the screen out with
`capture-pane` (text, the cursor, and with -e the colours, which `screen_html` turns into a picture).

Each `TmuxScreen` runs its own tmux server (its own socket under the test's folder), so tests never meet a
person's tmux or each other.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

TMUX_CONF = """\
set -g default-terminal "xterm-256color"
set -s escape-time 0
set -g status off
"""


def tmux() -> str | None:
    return shutil.which("tmux")


class TmuxScreen:
    def __init__(self, root: Path, command: list[str], env: dict[str, str], width: int = 100, height: int = 30):
        self.tmux = tmux()
        assert self.tmux is not None, "tmux is not installed"
        root.mkdir(parents=True, exist_ok=True)
        conf = root / "tmux.conf"
        conf.write_text(TMUX_CONF)
        self.socket = root / "tmux.sock"
        self.width, self.height = width, height
        self._run("-f", str(conf), "new-session", "-d", "-x", str(width), "-y", str(height), "-s", "main", "--",
                  *command, env=env)  # fmt: skip

    def _run(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [self.tmux, "-S", str(self.socket), *args], capture_output=True, text=True, env=env, timeout=30
        )
        if done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def keys(self, *keys: str) -> None:
        """tmux key names: "Tab", "Escape", "M-Right", "C-]", ... (one key each)."""
        for key in keys:
            self._run("send-keys", "-t", "main", key)
            time.sleep(0.05)

    def type(self, text: str) -> None:
        """Literal text, one character at a time, as typed."""
        for char in text:
            self._run("send-keys", "-t", "main", "-l", char)
            time.sleep(0.03)

    def lines(self) -> list[str]:
        return self._run("capture-pane", "-p", "-t", "main").split("\n")[: self.height]

    def cursor(self) -> tuple[int, int]:
        """(row, column), 0-based."""
        x, y = self._run("display-message", "-p", "-t", "main", "#{cursor_x} #{cursor_y}").split()
        return int(y), int(x)

    def ansi(self) -> str:
        return self._run("capture-pane", "-p", "-e", "-t", "main")

    def text(self) -> str:
        return "\n".join(self.lines())

    def wait(self, condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout_s} s for {what}; the screen:\n{self.text()}")
            time.sleep(0.1)

    def wait_for_text(self, text: str, timeout_s: float = 60) -> None:
        self.wait(lambda: text in self.text(), repr(text), timeout_s)

    def close(self) -> None:
        subprocess.run([self.tmux, "-S", str(self.socket), "kill-server"], capture_output=True, timeout=30)

    def __enter__(self) -> TmuxScreen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the screen as a picture ---------------------------------------------------------------------------------

_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_BASIC = ["#1e1e1e", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5"]
_BRIGHT = ["#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff"]
FOREGROUND, BACKGROUND = "#d4d4d4", "#1e1e1e"


def _xterm256(n: int) -> str:
    if n < 8:
        return _BASIC[n]
    if n < 16:
        return _BRIGHT[n - 8]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return f"#{steps[n // 36]:02x}{steps[(n // 6) % 6]:02x}{steps[n % 6]:02x}"
    gray = 8 + 10 * (n - 232)
    return f"#{gray:02x}{gray:02x}{gray:02x}"


def _apply(codes: list[int], style: dict[str, object]) -> None:
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0:
            style.clear()
        elif c == 1:
            style["bold"] = True
        elif c == 2:
            style["dim"] = True
        elif c == 3:
            style["italic"] = True
        elif c == 4:
            style["underline"] = True
        elif c == 7:
            style["reverse"] = True
        elif c in (22,):
            style.pop("bold", None)
            style.pop("dim", None)
        elif c == 23:
            style.pop("italic", None)
        elif c == 24:
            style.pop("underline", None)
        elif c == 27:
            style.pop("reverse", None)
        elif 30 <= c <= 37:
            style["fg"] = _BASIC[c - 30]
        elif 90 <= c <= 97:
            style["fg"] = _BRIGHT[c - 90]
        elif 40 <= c <= 47:
            style["bg"] = _BASIC[c - 40]
        elif 100 <= c <= 107:
            style["bg"] = _BRIGHT[c - 100]
        elif c == 39:
            style.pop("fg", None)
        elif c == 49:
            style.pop("bg", None)
        elif c in (38, 48) and i + 1 < len(codes):
            key = "fg" if c == 38 else "bg"
            if codes[i + 1] == 5 and i + 2 < len(codes):
                style[key] = _xterm256(codes[i + 2])
                i += 2
            elif codes[i + 1] == 2 and i + 4 < len(codes):
                style[key] = "#{:02x}{:02x}{:02x}".format(*codes[i + 2 : i + 5])
                i += 4
        i += 1


def _css(style: dict[str, object]) -> str:
    fg, bg = style.get("fg", FOREGROUND), style.get("bg", BACKGROUND)
    if style.get("reverse"):
        fg, bg = bg, fg
    parts = [f"color:{fg}", f"background:{bg}"]
    if style.get("bold"):
        parts.append("font-weight:bold")
    if style.get("italic"):
        parts.append("font-style:italic")
    if style.get("dim"):
        parts.append("opacity:0.6")
    if style.get("underline"):
        parts.append("text-decoration:underline")
    return ";".join(parts)


def screen_html(ansi: str, cursor: tuple[int, int] | None, title: str) -> str:
    """`capture-pane -e` output as an HTML page of a terminal window (a block cursor at `cursor`)."""
    rows = []
    for row, line in enumerate(ansi.rstrip("\n").split("\n")):
        style: dict[str, object] = {}
        cells: list[tuple[str, str]] = []
        position = 0
        for match in _SGR.finditer(line + "\x1b[m"):
            for char in line[position : match.start()]:
                cells.append((char, _css(style)))
            _apply([int(c) if c else 0 for c in match.group(1).split(";")], style)
            position = match.end()
        spans = []
        for column, (char, css) in enumerate(cells):
            if cursor == (row, column):
                css += ";outline:2px solid #aeafad;outline-offset:-2px"
            spans.append(f'<span style="{css}">{html.escape(char)}</span>')
        if cursor is not None and cursor[0] == row and cursor[1] >= len(cells):
            spans.append('<span style="background:#aeafad"> </span>')
        rows.append("".join(spans) or " ")
    body = "".join(f'<div class="row">{row}</div>' for row in rows)
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; background: #2b2b2b; font-family: 'DejaVu Sans Mono', monospace; }}
.window {{ display: inline-block; margin: 0; border-radius: 8px; overflow: hidden; background: {BACKGROUND}; }}
.title {{ background: #3c3c3c; color: #cccccc; font: 13px sans-serif; padding: 6px 12px; }}
.screen {{ padding: 8px 10px; font-size: 15px; line-height: 19px; white-space: pre; color: {FOREGROUND}; }}
.row span {{ white-space: pre; }}
</style></head><body><div class="window"><div class="title">{html.escape(title)}</div>
<div class="screen">{body}</div></div></body></html>"""


def save_screenshot(screen: TmuxScreen, path: Path, title: str) -> None:
    """The screen as a PNG, rendered by Chromium (tests/code_server.py's) from the coloured capture."""
    from playwright.sync_api import sync_playwright

    from tests.code_server import launch_chromium

    page_html = screen_html(screen.ansi(), screen.cursor(), title)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.set_content(page_html)
        page.locator(".window").screenshot(path=str(path))
        browser.close()
