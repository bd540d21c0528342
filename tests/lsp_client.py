"""Test helpers that drive the real server process: a pytest-lsp client, and a raw JSON-RPC client for bytes
no well-behaved client would send."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types

REPO = Path(__file__).resolve().parent.parent
SERVER_COMMAND = [sys.executable, "-m", "codegen_lsp.lsp_server", "--stdio"]

SAMPLE = (
    '''import os


def read_config(path):
    """Read a configuration file and return its lines."""
    with open(path) as handle:
        return [line.strip() for line in handle]


def main():
    lines = read_config(os.environ["CONFIG"])
    for line in lines:
        print(line)
'''
    + "    total = \n"
)
SAMPLE_URI = "file:///tmp/codegen-lsp-tests/sample.py"
# The end of "    total = " on the line before the last one: a multi-line, automatic completion point.
SAMPLE_POSITION = (13, 12)


def server_env(**extra: str) -> dict[str, str]:
    """The test process's environment (offline Hub, private caches) plus the debug commands."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env["CODEGEN_LSP_DEBUG"] = "1"
    env.update(extra)
    return env


def run_cli(*args: str, cwd: Path = REPO, timeout: float = 120, **redirects: Any) -> subprocess.CompletedProcess[str]:
    """`python -m codegen_lsp.lsp_server ARGS` with the tests' environment; output captured unless `redirects`
    (stdout=..., stderr=...) say otherwise."""
    output = redirects or {"capture_output": True}
    return subprocess.run(
        [sys.executable, "-m", "codegen_lsp.lsp_server", *args],
        text=True,
        env=server_env(),
        cwd=cwd,
        timeout=timeout,
        **output,
    )


def tiny_settings(model_dir: Path, **overrides: Any) -> dict[str, Any]:
    settings = {
        "model": str(model_dir),
        "device": "cpu",
        "dtype": "float32",
        "maxNewTokens": 8,
        "debounceMs": 0,
        "logLevel": "debug",
    }
    settings.update(overrides)
    return settings


def capabilities(
    *,
    progress: bool = True,
    inline: bool = True,
    configuration: bool = False,
    encodings: list[str] | None = None,
) -> types.ClientCapabilities:
    return types.ClientCapabilities(
        general=types.GeneralClientCapabilities(position_encodings=encodings) if encodings else None,
        window=types.WindowClientCapabilities(work_done_progress=progress),
        workspace=types.WorkspaceClientCapabilities(configuration=configuration),
        text_document=types.TextDocumentClientCapabilities(
            inline_completion=types.InlineCompletionClientCapabilities() if inline else None,
            completion=types.CompletionClientCapabilities(
                completion_item=types.ClientCompletionItemOptions(snippet_support=False)
            ),
        ),
    )


async def start_client(
    initialization_options: Any = None,
    client_capabilities: types.ClientCapabilities | None = None,
    env: dict[str, str] | None = None,
    configuration: dict | None = None,
):
    """A pytest-lsp client talking to a fresh server process, initialized."""
    from pytest_lsp import make_test_lsp_client

    client = make_test_lsp_client()
    if configuration is not None:
        client.set_configuration(configuration)
    await client.start_io(*SERVER_COMMAND, env=env or server_env())
    result = await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities or capabilities(),
            initialization_options=initialization_options,
            client_info=types.ClientInfo(name="codegen-lsp tests"),
        )
    )
    client.initialize_result = result  # type: ignore[attr-defined]
    return client


async def stop_client(client) -> None:
    try:
        await asyncio.wait_for(client.shutdown_session(), 30)
    finally:
        await client.stop()


async def debug_state(client) -> dict[str, Any]:
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(command="codegenLsp.debugState"))


async def document_text(client, uri: str) -> str | None:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="codegenLsp.debugDocumentText", arguments=[uri])
    )


async def wait_engine(client, states: tuple[str, ...] = ("ready",), timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = await debug_state(client)
        if state["engine"] in states:
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"engine state {state['engine']!r}, expected {states}")
        await asyncio.sleep(0.1)


async def configure(client, **settings) -> None:
    """didChangeConfiguration with our section, then a moment for the server to apply it."""
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"codegenLsp": settings}))
    await asyncio.sleep(0.1)


def open_document(client, uri: str, text: str, language_id: str = "python", version: int = 1) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=language_id, version=version, text=text)
        )
    )


async def inline(client, uri: str, line: int, character: int, invoked: bool = True, msg_id: Any = None):
    params = types.InlineCompletionParams(
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked
            if invoked
            else types.InlineCompletionTriggerKind.Automatic
        ),
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
    )
    if msg_id is None:
        return await client.text_document_inline_completion_async(params)
    return await client.protocol.send_request_async(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id)


# -- the raw client ---------------------------------------------------------------------------------------


class RawServer:
    """The server process with plain pipes: send any bytes, read framed messages off stdout."""

    def __init__(self, env: dict[str, str] | None = None, args: list[str] | None = None) -> None:
        self.process = subprocess.Popen(
            SERVER_COMMAND[:-1] + (args or ["--stdio"]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env or server_env(),
        )
        self.messages: queue.Queue[dict | None] = queue.Queue()
        self.notifications: list[dict] = []
        self.stderr_lines: list[str] = []
        self._ids = itertools.count(1000)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        out = self.process.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    self.messages.put(None)
                    return
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                if line == b"\r\n":
                    break
            assert length is not None, "the server sent a message without Content-Length"
            self.messages.put(json.loads(out.read(length)))

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_lines.append(line.decode("utf-8", "replace"))

    def send_bytes(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, message: dict | str | bytes, length: int | str | None = None) -> None:
        body = (
            message
            if isinstance(message, bytes)
            else (message.encode() if isinstance(message, str) else json.dumps(message).encode())
        )
        self.send_bytes(f"Content-Length: {len(body) if length is None else length}\r\n\r\n".encode() + body)

    def next_id(self) -> int:
        return next(self._ids)

    def request(self, method: str, params: Any = None, timeout: float = 30.0) -> dict:
        request_id = self.next_id()
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return self.wait_response(request_id, timeout)

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 30.0) -> dict:
        """The next message for which predicate holds; answers the server's own requests on the way."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no matching message from the server")
            try:
                message = self.messages.get(timeout=remaining)
            except queue.Empty:
                raise TimeoutError("no matching message from the server") from None
            if message is None:
                raise EOFError(f"the server exited ({self.process.poll()})")
            if "method" in message and "id" in message:  # a request from the server: answer null
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif "method" in message:
                self.notifications.append(message)
            if predicate(message):
                return message

    def wait_response(self, request_id: Any, timeout: float = 30.0) -> dict:
        return self.wait_for(lambda m: "method" not in m and m.get("id") == request_id, timeout)

    def initialize(self, initialization_options: Any = None, encodings: list[str] | None = None) -> dict:
        caps = {"window": {"workDoneProgress": False}, "textDocument": {"inlineCompletion": {}}}
        if encodings:
            caps["general"] = {"positionEncodings": encodings}
        response = self.request(
            "initialize",
            {"processId": os.getpid(), "capabilities": caps, "initializationOptions": initialization_options},
        )
        self.notify("initialized", {})
        return response

    def close(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            try:
                self.request("shutdown", None, timeout=timeout)
                self.notify("exit", None)
            except (TimeoutError, EOFError, BrokenPipeError, OSError):
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def worker_pids(server_pid: int) -> list[int]:
    """The server's inference worker processes (multiprocessing spawn children, not the resource tracker)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == server_pid and "spawn_main" in cmdline and "resource_tracker" not in cmdline:
            pids.append(int(entry.name))
    return pids
