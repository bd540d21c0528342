"""Bytes, types and settings no good client sends, over the real server: every request is answered (a result or a
clear error, never an internal error, never silence), every notification is taken whole or not at all, and the
server serves afterwards. No worker runs here (no `initialized`): this is the protocol layer alone.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from tests.lsp_client import RawServer

URI = "file:///tmp/codegen-lsp-tests/hostile.py"
TEXT = "def f(x):\n    return x + 1\n"
PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32602, -32603
WRONG_VALUES: list[Any] = [None, "x", -1, 2**64, 1.5, True, [], {}, [1, "a"], {"a": {"b": None}}]


@pytest.fixture(scope="module")
def server():
    server = RawServer()
    assert "result" in server.request("initialize", {"processId": None, "capabilities": {}})
    server.notify(
        "textDocument/didOpen", {"textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": TEXT}}
    )
    yield server
    assert server.close() == 0
    stderr = "".join(server.stderr_lines)
    assert "Traceback" not in stderr and "internal error" not in stderr.lower(), stderr[-3000:]


def inline_params(line: int = 1, character: int = 10) -> dict:
    return {
        "textDocument": {"uri": URI},
        "position": {"line": line, "character": character},
        "context": {
            "triggerKind": 1,
            "selectedCompletionInfo": {
                "range": {"start": {"line": 1, "character": 4}, "end": {"line": 1, "character": 10}},
                "text": "return",
            },
        },
    }


def text_of(server: RawServer, uri: str = URI) -> Any:
    return server.request("workspace/executeCommand", {"command": "codegenLsp.debugDocumentText", "arguments": [uri]})[
        "result"
    ]


def assert_serving(server: RawServer) -> None:
    assert server.request("textDocument/inlineCompletion", inline_params())["result"] == {"items": []}
    assert text_of(server) == TEXT


def body(message: dict) -> bytes:
    return json.dumps(message).encode()


def request_bytes(request_id: int) -> bytes:
    return body(
        {"jsonrpc": "2.0", "id": request_id, "method": "textDocument/inlineCompletion", "params": inline_params()}
    )


# -- framing -------------------------------------------------------------------------------------------------

FRAMINGS: dict[str, tuple[Any, int | None]] = {
    # name: (frame a request body badly, the error code the request gets; None: it is answered normally)
    "length too long": (lambda b: b"Content-Length: %d\r\n\r\n" % (len(b) + 30) + b, PARSE_ERROR),
    "length too short": (lambda b: b"Content-Length: %d\r\n\r\n" % (len(b) - 9) + b, PARSE_ERROR),
    "length not a number": (lambda b: b"Content-Length: 12a\r\n\r\n" + b, PARSE_ERROR),
    "length negative": (lambda b: b"Content-Length: -4\r\n\r\n" + b, PARSE_ERROR),
    "length enormous": (lambda b: b"Content-Length: 99999999999999999999\r\n\r\n" + b, PARSE_ERROR),
    "no length": (lambda b: b"Content-Type: application/json\r\n\r\n" + b, PARSE_ERROR),
    "garbage before": (lambda b: b"\x00\xffhello}{\r\n" + b"Content-Length: %d\r\n\r\n" % len(b) + b, None),
    "lower-case, spaced header": (lambda b: b"content-length   :  %d\r\n\r\n" % len(b) + b, None),
    "two lengths, the last wins": (lambda b: b"Content-Length: 3\r\nContent-Length: %d\r\n\r\n" % len(b) + b, None),
    "extra headers": (lambda b: b"X-Thing: 1\r\nContent-Length: %d\r\nContent-Type: x\r\n\r\n" % len(b) + b, None),
}  # fmt: skip


@pytest.mark.parametrize("name", list(FRAMINGS))
def test_bad_framing_is_answered_and_the_next_message_is_not_lost(server: RawServer, name: str) -> None:
    build, code = FRAMINGS[name]
    bad, good = server.next_id(), server.next_id()
    server.send_bytes(build(request_bytes(bad)))
    server.send(request_bytes(good))  # sent at once: it must be read, whatever the bad one did
    answer = server.wait_response(bad, timeout=20)
    if code is None:
        assert answer["result"] == {"items": []}
    else:
        assert answer["error"]["code"] == code
    assert server.wait_response(good, timeout=20)["result"] == {"items": []}


def test_a_bare_lf_header_as_the_last_message_is_answered(server: RawServer) -> None:
    bad = server.next_id()
    data = request_bytes(bad)
    server.send_bytes(b"Content-Length: %d\n\n" % len(data) + data)  # then nothing: the client waits
    assert server.wait_response(bad, timeout=20)["error"]["code"] == PARSE_ERROR
    assert_serving(server)


@pytest.mark.parametrize("raw, code", [
    (b"\xff\xfe\x00not utf-8", PARSE_ERROR),
    (b"[" * 100_000 + b"]" * 100_000, PARSE_ERROR),  # deeper than any parser recursion
    (b'"just a string"', INVALID_REQUEST),
    (b"[]", INVALID_REQUEST),
    (b"null", INVALID_REQUEST),
    (b'{"jsonrpc": "1.0", "id": 5, "method": "shutdown"}', INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": 1.5, "method": "shutdown"}', INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "shutdown"}', INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": true, "method": "shutdown"}', INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": 5, "method": 12}', INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": 5, "method": "textDocument/inlineCompletion", "params": [1, 2]}', INVALID_PARAMS),
    (b'{"jsonrpc": "2.0", "id": 5, "method": "textDocument/inlineCompletion", "params": {"position": '
     b'{"line": NaN, "character": Infinity}, "textDocument": {"uri": "file:///x.py"}, "context": {"triggerKind": 1}}}',
     INVALID_PARAMS),
])  # fmt: skip
def test_bodies_that_are_not_requests_are_answered(server: RawServer, raw: bytes, code: int) -> None:
    server.send(raw)
    answer = server.wait_for(lambda m: "error" in m and m["error"]["code"] == code, timeout=20)
    assert answer["id"] in (None, 5)
    assert_serving(server)


def test_responses_and_notifications_nobody_asked_for_are_ignored(server: RawServer) -> None:
    server.send({"jsonrpc": "2.0", "id": "no-such-request", "result": {"x": 1}})
    server.send({"jsonrpc": "2.0", "id": 99, "error": {"code": 1, "message": "?"}})
    server.notify("codegen/noSuchNotification", {"x": [1, 2]})
    server.notify("$/cancelRequest", {"id": {"not": "an id"}})
    server.notify("$/setTrace", {"value": "loud"})
    assert_serving(server)


def test_a_huge_request_is_answered(server: RawServer) -> None:
    params = inline_params()
    params["textDocument"]["uri"] = "file:///" + "a" * 5_000_000 + ".py"  # 5 MB: not open, no items
    assert server.request("textDocument/inlineCompletion", params, timeout=60)["result"] == {"items": []}
    assert_serving(server)


# -- wrong types in every params field -----------------------------------------------------------------------


def paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every place in a JSON value: the value itself, each member, recursively."""
    yield prefix
    if isinstance(value, dict):
        for key, member in value.items():
            yield from paths(member, (*prefix, key))


def replaced(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    value = copy.deepcopy(value)
    target = value
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return value


def wrong_for(original: Any) -> list[Any]:
    return [v for v in WRONG_VALUES if type(v) is not type(original) or v == []]


def test_wrong_types_in_every_field_of_a_completion_request(server: RawServer) -> None:
    template = inline_params()
    for path in paths(template):
        for value in wrong_for(eval_path(template, path)):
            answer = server.request("textDocument/inlineCompletion", replaced(template, path, value), timeout=20)
            code = answer.get("error", {}).get("code")
            assert code in (None, INVALID_PARAMS), (path, value, answer)
            assert code is not None or answer["result"] == {"items": []}, (path, value, answer)
    assert_serving(server)


def eval_path(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


NOTIFICATIONS = {
    "textDocument/didChange": lambda uri: {
        "textDocument": {"uri": uri, "version": 2},
        "contentChanges": [
            {"range": {"start": {"line": 0, "character": 4}, "end": {"line": 0, "character": 5}}, "text": "g"}
        ],
    },
    "textDocument/didClose": lambda uri: {"textDocument": {"uri": uri}},
}
AFTER = {"textDocument/didChange": "def g(x):\n    return x + 1\n", "textDocument/didClose": None}


@pytest.mark.parametrize("method", list(NOTIFICATIONS))
def test_wrong_types_in_every_field_of_a_document_notification(server: RawServer, method: str) -> None:
    """Each notification is taken whole or not at all: the text is the one before or the one after, exactly."""
    template = NOTIFICATIONS[method]("file:///TEMPLATE")
    for n, path in enumerate(paths(template)):
        for m, value in enumerate(wrong_for(eval_path(template, path))):
            uri = f"file:///tmp/codegen-lsp-tests/wrong-{method.rsplit('/', 1)[1]}-{n}-{m}.py"
            server.notify(
                "textDocument/didOpen",
                {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": TEXT}},
            )
            params = replaced(NOTIFICATIONS[method](uri), path, value)
            server.notify(method, params)
            assert text_of(server, uri) in (TEXT, AFTER[method]), (path, value)
            server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert_serving(server)


def test_wrong_types_in_every_field_of_did_open(server: RawServer) -> None:
    template = {"textDocument": {"uri": "file:///TEMPLATE", "languageId": "python", "version": 1, "text": TEXT}}
    for n, path in enumerate(paths(template)):
        for m, value in enumerate(wrong_for(eval_path(template, path))):
            uri = f"file:///tmp/codegen-lsp-tests/wrong-open-{n}-{m}.py"
            params = replaced(replaced(template, ("textDocument", "uri"), uri), path, value)
            server.notify("textDocument/didOpen", params)
            assert text_of(server, uri) in (None, TEXT), (path, value)
            server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert_serving(server)


# -- hostile settings ----------------------------------------------------------------------------------------


def settings_now(server: RawServer) -> dict:
    return server.request("workspace/executeCommand", {"command": "codegenLsp.debugState"})["result"]["settings"]


HOSTILE = [None, "", "x" * 1_000_000, -1, 0, 2**70, -(2**70), 1e308, 1.5, True, [], {}, [None], {"a": {"b": [{}]}},
           "(", "[", "\ud800"]  # fmt: skip


def test_hostile_settings_are_refused_one_by_one_and_never_break_the_server(server: RawServer) -> None:
    defaults = settings_now(server)
    for key in defaults:
        if key in ("truncateBeforePattern",):
            continue  # user regular expressions: their own suite (issue 10, item 1)
        for value in HOSTILE:
            server.notify("workspace/didChangeConfiguration", {"settings": {"codegenLsp": {key: value}}})
            now = settings_now(server)
            for name, default in defaults.items():  # every number and switch keeps its type
                if isinstance(default, int | float) and now[name] is not None:
                    assert type(now[name]) in (type(default), float if type(default) is int else int), (key, value)
            assert isinstance(now["maxNewTokens"], int) and 1 <= now["maxNewTokens"] <= 1024
    for payload in (None, [], "codegenLsp", 12, {"codegenLsp": None}, {"codegenLsp": [1]}, {"codegenLsp": "x"}):
        server.notify("workspace/didChangeConfiguration", {"settings": payload})
    server.send(
        b'{"jsonrpc": "2.0", "method": "workspace/didChangeConfiguration", '
        b'"params": {"settings": {"codegenLsp": {"temperature": NaN, "topP": Infinity}}}}'
    )
    now = settings_now(server)
    assert not math.isnan(now["temperature"]) and math.isfinite(now["topP"])
    assert_serving(server)


def test_our_own_request_may_leave_params_out(server):
    """JSON-RPC makes params optional, and rass (the Emacs multiplexer) drops empty ones: `codegenLsp/status`
    without a params key is answered like one with `{}`, not with InvalidParams."""
    request_id = server.next_id()
    server.send({"jsonrpc": "2.0", "id": request_id, "method": "codegenLsp/status"})
    answer = server.wait_response(request_id)
    assert "error" not in answer, answer
    assert answer["result"]["state"] in {"loading", "ready", "busy", "remoteDown", "error", "disabled", "stopped"}
