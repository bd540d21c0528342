"""What the editor tests share: how to start the server, and a document + cursor whose answer is known.

The expected text always comes from `codegen-lsp complete --json` (the CLI shares the server's pipeline), run
on the very file the editor opens, with the settings the editor sends. The tiny test model writes
deterministic gibberish that post-processing sometimes cuts to nothing, so `editor_case` tries a few documents
in a fixed order and keeps the first whose completion is non-empty; every editor test then uses that one case.

The tiny model never writes a line break, so multi-line suggestions (virtual lines, accept-line, a menu item
that inserts several lines) are tested against `fake_server`: a scripted LSP server, stdlib only, that
answers every request with one fixed completion (`fake_case`).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EDITORS = REPO / "editors"

MAX_NEW_TOKENS = 12

# Documents ending with the cursor line (the cursor at its end) and a final newline: every editor then holds
# exactly the bytes on disk (Neovim and Emacs keep the final newline, VS Code sends the text as is).
CANDIDATES: tuple[str, ...] = (
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n'
    "    return fibonacci(n - 1) + fib\n",
    "import os\n\n\ndef list_python_files(folder):\n    result = []\n    for name in os.listdir(folder):\n"
    "        if name.endswith(\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n"
    "        self.items.\n",
    "def greet(name):\n    message = \n",
    "import json\n\nwith open(path) as f:\n    data = json.\n",
    "for i in range(10):\n    print(\n",
    "x = 1\ny = \n",
)


def server_command() -> list[str]:
    """The server as the editors start it: this checkout's `lsp_server`, with this interpreter."""
    return [sys.executable, "-m", "codegen_lsp.lsp_server", "serve", "--stdio"]


def server_env() -> dict[str, str]:
    """os.environ (conftest made it offline, with private caches) plus this checkout on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def editor_settings(model_dir: Path | str) -> dict[str, object]:
    """Server settings every editor test sends (camelCase, as on the wire)."""
    return {"model": str(model_dir), "device": "cpu", "dtype": "float32", "maxNewTokens": MAX_NEW_TOKENS}


def cli_complete(
    model_dir: Path | str, path: Path, line: int, character: int, max_new_tokens: int = MAX_NEW_TOKENS
) -> dict:
    """`codegen-lsp complete --json` for the file at (line, character), with editor_settings()."""
    command = [
        sys.executable, "-m", "codegen_lsp.lsp_server", "complete",
        "--model", str(model_dir), str(path),
        "--line", str(line), "--character", str(character),
        "--device", "cpu", "--dtype", "float32", "--max-new-tokens", str(max_new_tokens), "--json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=server_env(), cwd=REPO, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


@dataclass(frozen=True)
class EditorCase:
    path: str  # the .py file, alone in a project folder (with .git, for eglot's project)
    text: str
    line: int  # 0-based
    character: int  # UTF-16 units (the documents are ASCII: also bytes and code points)
    completion: str  # what the CLI completes there: the ghost text and the inserted text
    settings: dict = field(default_factory=dict)
    server: list = field(default_factory=list)

    @property
    def offset(self) -> int:
        lines = self.text.split("\n")
        return sum(len(x) + 1 for x in lines[: self.line]) + self.character

    @property
    def expected_text(self) -> str:
        """The document after accepting the completion."""
        return self.text[: self.offset] + self.completion + self.text[self.offset :]

    def write_json(self, path: Path) -> Path:
        data = asdict(self) | {"expected_text": self.expected_text}
        path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        return path


@functools.cache
def _find_case(model_dir: str) -> EditorCase:
    root = Path(tempfile.mkdtemp(prefix="codegen-lsp-editor-"))
    tried = []
    for index, text in enumerate(CANDIDATES):
        project = root / f"project{index}"
        (project / ".git").mkdir(parents=True)
        path = project / "example.py"
        path.write_text(text, encoding="utf-8")
        lines = text.split("\n")
        line = len(lines) - 2  # the last line with text; the final "" follows the final newline
        character = len(lines[line])
        result = cli_complete(model_dir, path, line, character)
        if result["completion"]:
            return EditorCase(
                str(path),
                text,
                line,
                character,
                result["completion"],
                editor_settings(model_dir),
                server_command(),
            )
        tried.append((text.split("\n")[line], result.get("raw")))
    raise AssertionError(f"the CLI completed none of the candidate documents: {tried}")


def editor_case(model_dir: Path) -> EditorCase:
    """The shared case (computed once per test session, whichever editor test asks first)."""
    return _find_case(str(model_dir))


# -- on screen: the bundled model, a person typing -----------------------------------------------------------

SCREEN_MAX_NEW_TOKENS = 24
SCREEN_SETTINGS: dict[str, object] = {
    "model": "bundled",
    "device": "cpu",
    "dtype": "float32",
    "maxNewTokens": SCREEN_MAX_NEW_TOKENS,
}
EXAMPLE = REPO / "examples" / "inventory.py"
EXAMPLE_CUT = "    def add(self, name, count=1):\n"  # the file ends here; the person types the body's first line


@dataclass(frozen=True)
class ScreenCase:
    """examples/inventory.py up to `def add(...):`, where a person types `typed` on the next line."""

    path: Path
    text: str  # on disk when the editor opens it
    typed: str

    @property
    def typed_text(self) -> str:
        return self.text + self.typed

    @property
    def line(self) -> int:
        return self.typed_text.count("\n")

    @property
    def character(self) -> int:
        return len(self.typed_text.split("\n")[-1])


def screen_case(folder: Path, typed: str = "        if") -> ScreenCase:
    source = EXAMPLE.read_text(encoding="utf-8")
    text = source[: source.index(EXAMPLE_CUT) + len(EXAMPLE_CUT)]
    path = folder / "inventory.py"
    path.write_text(text, encoding="utf-8")
    return ScreenCase(path, text, typed)


@functools.cache
def _bundled_completion(text: str, line: int, character: int) -> str:
    with tempfile.TemporaryDirectory(prefix="codegen-lsp-screen-") as folder:
        path = Path(folder) / "inventory.py"
        path.write_text(text, encoding="utf-8")
        return cli_complete("bundled", path, line, character, SCREEN_MAX_NEW_TOKENS)["completion"]


def screen_completion(case: ScreenCase, final_newline: bool = False) -> str:
    """What the CLI completes with SCREEN_SETTINGS once `typed` is typed: the ghost text the editor shows.
    Neovim and Emacs keep a final newline after the typed line (`final_newline`); VS Code does not add one."""
    return _bundled_completion(case.typed_text + ("\n" if final_newline else ""), case.line, case.character)


# -- a scripted server for multi-line suggestions -----------------------------------------------------------

FAKE_COMPLETION = "onacci(n - 2)\n    # two more lines\n    return None"
FAKE_ALTERNATIVE = "onacci(n - 1)  # the second candidate"  # codegenLsp/inlineCompletion's (numCandidates > 1)


def fake_case(root: Path) -> EditorCase:
    """The first candidate document, answered with FAKE_COMPLETION (three lines) by `fake_server`."""
    project = root / "fake-project"
    (project / ".git").mkdir(parents=True, exist_ok=True)
    path = project / "example.py"
    text = CANDIDATES[0]
    path.write_text(text, encoding="utf-8")
    lines = text.split("\n")
    line = len(lines) - 2
    command = [sys.executable, "-m", "tests.editor_support", "fake-server", FAKE_COMPLETION]
    return EditorCase(str(path), text, line, len(lines[line]), FAKE_COMPLETION, {}, command)


def _read_message(stream) -> dict | None:
    length = None
    while True:
        header = stream.readline()
        if not header:
            return None
        if header in (b"\r\n", b"\n"):
            break
        name, _, value = header.decode("ascii").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return json.loads(stream.read(length)) if length is not None else None


def _write_message(stream, message: dict) -> None:
    body = json.dumps(message).encode("utf-8")
    stream.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    stream.flush()


def fake_server(completion: str) -> int:
    """LSP on stdin/stdout: every inline request gets `completion` at the cursor, every completion request an
    item whose edit replaces the word before the cursor with that word + `completion`, and the alternatives
    request (`codegenLsp/inlineCompletion`, numCandidates 2) `completion` and FAKE_ALTERNATIVE. Like codegen-lsp, it
    offers no completion menu to a client that advertises inline completion. ASCII documents only."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    texts: dict[str, str] = {}
    while (message := _read_message(stdin)) is not None:
        method, params = message.get("method"), message.get("params") or {}
        result: object = None
        if method == "initialize":
            inline_client = "inlineCompletion" in (params.get("capabilities", {}).get("textDocument") or {})
            capabilities: dict = {"textDocumentSync": 1, "inlineCompletionProvider": True}
            if not inline_client:
                capabilities["completionProvider"] = {"resolveProvider": False}
            result = {"capabilities": capabilities, "serverInfo": {"name": "fake-codegen-lsp"}}
        elif method == "exit":
            return 0
        elif method == "textDocument/didOpen":
            texts[params["textDocument"]["uri"]] = params["textDocument"]["text"]
        elif method == "textDocument/didChange":
            texts[params["textDocument"]["uri"]] = params["contentChanges"][-1]["text"]
        elif method in ("textDocument/inlineCompletion", "codegenLsp/inlineCompletion", "textDocument/completion"):
            position = params["position"]
            at = {"start": position, "end": position}
            if method == "textDocument/inlineCompletion":
                result = {"items": [{"insertText": completion, "range": at}]}
            elif method == "codegenLsp/inlineCompletion":  # the alternatives: the same first, then another
                texts_ = [completion, FAKE_ALTERNATIVE][: params["numCandidates"]]
                result = {"items": [{"insertText": text, "range": at} for text in texts_]}
            else:
                line = texts.get(params["textDocument"]["uri"], "").split("\n")[position["line"]]
                prefix = line[: position["character"]]
                word = prefix[len(prefix.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")) :]
                start = {"line": position["line"], "character": position["character"] - len(word)}
                new_text = word + completion
                result = {
                    "isIncomplete": True,
                    "items": [
                        {
                            "label": new_text.split("\n")[0],
                            "kind": 1,
                            "textEdit": {"range": {"start": start, "end": position}, "newText": new_text},
                        }
                    ],
                }
        if "id" in message and "method" in message:
            _write_message(stdout, {"jsonrpc": "2.0", "id": message["id"], "result": result})
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "fake-server":
        raise SystemExit(fake_server(sys.argv[2]))
    raise SystemExit(f"usage: python -m tests.editor_support fake-server COMPLETION (got {sys.argv[1:]})")
