"""Bytes no good client sends, each answered, the server serving afterwards; and the server's copy of each
document against the ground truth over random incremental edits, in utf-8 and utf-16."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.lsp_client import SAMPLE, SAMPLE_POSITION, RawServer, tiny_settings

URI = "file:///tmp/codegen-lsp-tests/raw.py"


@pytest.fixture(scope="module")
def utf8_server(tiny_model_dir):
    """Offers utf-16 first and utf-8 second: the server still picks utf-8. The model is loaded."""
    server = RawServer()
    response = server.initialize(tiny_settings(tiny_model_dir), encodings=["utf-16", "utf-8"])
    assert response["result"]["capabilities"]["positionEncoding"] == "utf-8"
    server.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": SAMPLE}},
    )
    yield server
    assert server.close() == 0


@pytest.fixture(scope="module")
def utf16_server():
    """No `initialized`: documents only, no worker is started."""
    server = RawServer()
    response = server.request("initialize", {"processId": None, "capabilities": {}})
    assert response["result"]["capabilities"]["positionEncoding"] == "utf-16"
    yield server
    assert server.close() == 0


def inline_params(line: int = SAMPLE_POSITION[0], character: int = SAMPLE_POSITION[1], uri: str = URI) -> dict:
    return {
        "textDocument": {"uri": uri},
        "position": {"line": line, "character": character},
        "context": {"triggerKind": 1},
    }


def assert_serving(server: RawServer) -> None:
    response = server.request("textDocument/inlineCompletion", inline_params(), timeout=120)
    assert response["result"]["items"], response


def test_bad_json_is_answered(utf8_server: RawServer) -> None:
    utf8_server.send(b'{"jsonrpc": "2.0", "id": 71, "method": "textDocument/inlineCompletion", "params": {')
    assert utf8_server.wait_response(71)["error"]["code"] == -32700
    utf8_server.send(b"\xff\xfe not json at all")  # no id to answer: JSON-RPC's null id
    assert utf8_server.wait_response(None)["error"]["code"] == -32700
    assert_serving(utf8_server)


@pytest.mark.parametrize("length", ["abc", "-5", ""])
def test_bad_content_length_is_answered(utf8_server: RawServer, length: str) -> None:
    request_id = utf8_server.next_id()
    utf8_server.send(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "textDocument/inlineCompletion",
            "params": inline_params(),
        },
        length=length,
    )
    assert utf8_server.wait_response(request_id)["error"]["code"] == -32700
    assert_serving(utf8_server)


def test_content_length_too_short_and_missing(utf8_server: RawServer) -> None:
    first, second = utf8_server.next_id(), utf8_server.next_id()
    body = json.dumps(
        {"jsonrpc": "2.0", "id": first, "method": "textDocument/inlineCompletion", "params": inline_params()}
    ).encode()
    utf8_server.send(body, length=len(body) - 20)
    assert utf8_server.wait_response(first)["error"]["code"] == -32700
    body = json.dumps({"jsonrpc": "2.0", "id": second, "method": "shutdown"}).encode()
    utf8_server.send_bytes(b"Content-Type: application/json\r\n\r\n" + body)  # no Content-Length at all
    assert utf8_server.wait_response(second)["error"]["code"] == -32700  # and it did not shut down
    assert_serving(utf8_server)


@pytest.mark.parametrize(
    "position",
    [{"line": "three", "character": 0}, {"line": -1, "character": 0}, {"line": 0, "character": -4}, None],
)
def test_wrong_params_are_answered(utf8_server: RawServer, position) -> None:
    params = inline_params()
    params["position"] = position
    response = utf8_server.request("textDocument/inlineCompletion", params)
    assert response["error"]["code"] == -32602 and "position" in response["error"]["message"]
    assert_serving(utf8_server)


def test_unknown_method_and_not_json_rpc(utf8_server: RawServer) -> None:
    assert utf8_server.request("codegen/noSuchMethod", {})["error"]["code"] == -32601
    utf8_server.notify("codegen/noSuchNotification", {"x": 1})
    utf8_server.send(b'[{"jsonrpc": "2.0", "id": 5, "method": "shutdown"}]')  # a batch: not in LSP
    assert utf8_server.wait_response(None)["error"]["code"] == -32600
    utf8_server.send({"id": 9, "method": "shutdown"})  # no "jsonrpc"
    assert utf8_server.wait_response(9)["error"]["code"] == -32600
    assert_serving(utf8_server)


def test_edits_to_unknown_documents_and_bad_edits(utf8_server: RawServer) -> None:
    utf8_server.notify(
        "textDocument/didChange",
        {"textDocument": {"uri": "file:///nowhere.py", "version": 2}, "contentChanges": [{"text": "x"}]},
    )
    utf8_server.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": URI, "version": 2},
            "contentChanges": [{"range": "everything", "text": "x"}],
        },
    )
    response = utf8_server.request(
        "workspace/executeCommand", {"command": "codegenLsp.debugDocumentText", "arguments": [URI]}
    )
    assert response["result"] == SAMPLE  # the bad edit was refused whole
    assert_serving(utf8_server)


# -- incremental sync against the ground truth ---------------------------------------------------------------

PIECES = ["a", "b", "_", " ", "\t", "(", ")", "\n", "\r\n", "\r", "é", "€", "😀", "𝔘", "\f", "\u2028", '"']
texts = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)
_BREAK = re.compile(r"\r\n|\r|\n")


def lsp_position(text: str, offset: int, encoding: str) -> dict:
    """The reference conversion: LSP lines end at \\n, \\r\\n, \\r only; characters in code units."""
    starts = [0] + [m.end() for m in _BREAK.finditer(text)]
    line = max(i for i, s in enumerate(starts) if s <= offset)
    prefix = text[starts[line] : offset]
    if encoding == "utf-8":
        units = len(prefix.encode("utf-8"))
    else:
        units = sum(2 if ord(c) > 0xFFFF else 1 for c in prefix)
    return {"line": line, "character": units}


@st.composite
def edit_sessions(draw):
    text = draw(texts)
    notifications = []
    truth = text
    for _ in range(draw(st.integers(1, 4))):
        changes = []
        for _ in range(draw(st.integers(1, 3))):
            a, b = sorted(draw(st.tuples(st.integers(0, len(truth)), st.integers(0, len(truth)))))
            a, b = (x - 1 if truth[x - 1 : x + 1] == "\r\n" else x for x in (a, b))  # not inside a break
            new = draw(texts)
            changes.append((a, b, new))
            truth = truth[:a] + new + truth[b:]
        notifications.append(changes)
    return text, notifications


_documents = iter(range(10**9))


def check_sync(server: RawServer, encoding: str, session) -> None:
    text, notifications = session
    uri = f"file:///tmp/codegen-lsp-tests/sync{next(_documents)}.py"
    server.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
    )
    truth = text
    for version, changes in enumerate(notifications, start=2):
        content = []
        for a, b, new in changes:  # each change applies to the text the previous one left
            content.append(
                {
                    "range": {
                        "start": lsp_position(truth, a, encoding),
                        "end": lsp_position(truth, b, encoding),
                    },
                    "text": new,
                }
            )
            truth = truth[:a] + new + truth[b:]
        server.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": version}, "contentChanges": content},
        )
    response = server.request(
        "workspace/executeCommand", {"command": "codegenLsp.debugDocumentText", "arguments": [uri]}
    )
    server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert response["result"] == truth


@given(session=edit_sessions())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_incremental_sync_utf8(utf8_server: RawServer, session) -> None:
    check_sync(utf8_server, "utf-8", session)


@given(session=edit_sessions())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_incremental_sync_utf16(utf16_server: RawServer, session) -> None:
    check_sync(utf16_server, "utf-16", session)


def test_requests_after_shutdown_are_refused() -> None:
    server = RawServer()
    server.request("initialize", {"processId": None, "capabilities": {}})
    assert server.request("shutdown")["result"] is None
    assert server.request("textDocument/inlineCompletion", inline_params())["error"]["code"] == -32600
    server.notify("exit")
    assert server.process.wait(30) == 0
