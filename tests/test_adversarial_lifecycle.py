"""Life-cycle misuse, as the LSP specification's state machine answers it; and what a session leaves behind.

Before `initialize`: requests get ServerNotInitialized (-32002), notifications are dropped, `exit` exits (1).
`initialize` comes once: a second gets InvalidRequest and changes nothing. After `shutdown`: requests get
InvalidRequest, `exit` exits with 0. No worker is started here (no `initialized` is sent, or no model).
"""

from __future__ import annotations

import time

import pytest

from tests.lsp_client import RawServer

SERVER_NOT_INITIALIZED = -32002
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
URI = "file:///tmp/codegen-lsp-tests/lifecycle.py"


def open_params(text: str = "x = 1\n", uri: str = URI) -> dict:
    return {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}}


def text_of(server: RawServer, uri: str = URI) -> dict:
    return server.request("workspace/executeCommand", {"command": "codegenLsp.debugDocumentText", "arguments": [uri]})


def state(server: RawServer) -> dict:
    return server.request("workspace/executeCommand", {"command": "codegenLsp.debugState"})["result"]


def initialize(server: RawServer, options: dict | None = None) -> dict:
    return server.request("initialize", {"processId": None, "capabilities": {}, "initializationOptions": options})


@pytest.fixture
def server():
    server = RawServer()
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()


def test_requests_before_initialize_are_refused_and_notifications_dropped(server: RawServer) -> None:
    for method, params in [
        (
            "textDocument/inlineCompletion",
            {"textDocument": {"uri": URI}, "position": {"line": 0, "character": 0}, "context": {"triggerKind": 1}},
        ),
        ("workspace/executeCommand", {"command": "codegenLsp.debugState"}),
        ("codegen/noSuchMethod", None),
    ]:
        assert server.request(method, params)["error"]["code"] == SERVER_NOT_INITIALIZED, method
    server.notify("textDocument/didOpen", open_params())  # dropped
    server.notify("initialized", {})  # dropped: no worker may start before initialize
    assert "result" in initialize(server)
    assert text_of(server)["result"] is None
    assert state(server)["engine"] is None
    server.notify("textDocument/didOpen", open_params())
    assert text_of(server)["result"] == "x = 1\n"
    assert server.close() == 0


def test_shutdown_before_initialize_does_not_brick_the_session(server: RawServer) -> None:
    assert server.request("shutdown")["error"]["code"] == SERVER_NOT_INITIALIZED
    assert "result" in initialize(server)
    server.notify("textDocument/didOpen", open_params())
    assert text_of(server)["result"] == "x = 1\n"
    assert server.request("shutdown")["result"] is None
    server.notify("exit")
    assert server.process.wait(30) == 0


def test_exit_before_initialize_exits_with_1(server: RawServer) -> None:
    server.notify("exit")
    assert server.process.wait(30) == 1


def test_exit_without_shutdown_exits_with_1(server: RawServer) -> None:
    initialize(server)
    server.notify("exit")
    assert server.process.wait(30) == 1


def test_a_second_initialize_is_refused_and_changes_nothing(server: RawServer) -> None:
    first = initialize(server, {"maxNewTokens": 5, "device": "cpu"})
    assert first["result"]["capabilities"]["positionEncoding"] == "utf-16"
    second = server.request(
        "initialize",
        {
            "processId": None,
            "capabilities": {"general": {"positionEncodings": ["utf-8"]}},
            "initializationOptions": {"maxNewTokens": 9, "device": "cuda"},
        },
    )
    assert second["error"]["code"] == INVALID_REQUEST
    after = state(server)
    assert after["settings"]["maxNewTokens"] == 5 and after["settings"]["device"] == "cpu"
    assert after["encoding"] == "utf-16"
    assert server.close() == 0


def test_an_initialize_with_bad_params_can_be_retried(server: RawServer) -> None:
    assert server.request("initialize", {"processId": "me", "capabilities": 7})["error"]["code"] == INVALID_PARAMS
    assert server.request("shutdown")["error"]["code"] == SERVER_NOT_INITIALIZED  # still not initialized
    assert "result" in initialize(server)
    assert server.close() == 0


def test_after_shutdown_requests_are_refused_and_notifications_dropped(server: RawServer) -> None:
    initialize(server)
    assert server.request("shutdown")["result"] is None
    assert server.request("shutdown")["error"]["code"] == INVALID_REQUEST
    assert initialize(server)["error"]["code"] == INVALID_REQUEST
    assert text_of(server)["error"]["code"] == INVALID_REQUEST
    server.notify("textDocument/didOpen", open_params())
    server.notify("exit")
    assert server.process.wait(30) == 0


def test_notifications_leave_nothing_behind(server: RawServer) -> None:
    """pygls kept a future per notification handled by a generator (didOpen, didChange, didClose)."""
    initialize(server)
    server.notify("textDocument/didOpen", open_params(""))
    for version in range(2, 302):
        server.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": URI, "version": version},
                "contentChanges": [
                    {
                        "range": {
                            "start": {"line": 0, "character": version - 2},
                            "end": {"line": 0, "character": version - 2},
                        },
                        "text": "a",
                    }
                ],
            },
        )
    server.notify("workspace/didChangeConfiguration", {"settings": {"maxNewTokens": 7}})  # a coroutine handler
    server.notify("codegen/noSuchNotification", {})
    server.notify("textDocument/didClose", {"textDocument": {"uri": URI}})
    state(server)  # the loop has run the done callbacks of what came in the same read as this request
    assert state(server)["handler_futures"] <= 1  # the debugState request itself
    assert server.close() == 0


def test_a_cancel_for_an_answered_request_is_not_a_warning(server: RawServer) -> None:
    """Editors cancel requests whose answer is already on its way (VS Code does on every keystroke)."""
    initialize(server)
    server.notify("textDocument/didOpen", open_params())
    answered = server.request(
        "textDocument/inlineCompletion",
        {"textDocument": {"uri": URI}, "position": {"line": 0, "character": 5}, "context": {"triggerKind": 2}},
    )
    server.notify("$/cancelRequest", {"id": answered["id"]})
    server.notify("$/cancelRequest", {"id": "never-sent"})
    assert text_of(server)["result"] == "x = 1\n"
    assert server.close() == 0
    time.sleep(0.2)  # the stderr reader drains the pipe
    assert not [line for line in server.stderr_lines if "Cancel notification" in line or "WARNING" in line]


def test_each_log_line_goes_one_way_only(server: RawServer, tmp_path) -> None:
    """Editors show stderr and window/logMessage in one place: while the session is on, logs go to the client."""
    initialize(server, {"model": str(tmp_path / "no-model-here"), "device": "cpu", "logLevel": "info"})
    server.notify("initialized", {})
    server.wait_for(lambda m: m.get("method") == "window/logMessage")  # the session is on
    server.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": "file:///tmp/notes.txt", "languageId": "plaintext", "version": 1, "text": "hello"}},
    )
    server.wait_for(lambda m: m.get("method") == "window/logMessage" and "plaintext" in m["params"]["message"])
    assert server.close() == 0
    time.sleep(0.2)  # the stderr reader drains the pipe
    stderr = "".join(server.stderr_lines)
    assert "initialize from" in stderr  # before the session: stderr
    assert "plaintext" not in stderr  # during it: the client only
