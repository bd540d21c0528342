"""Message framing: good messages in any chunking, and resynchronisation after each kind of bad framing."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from codegen_lsp.lsp_server.transport import MessageReader, recover_id


def frame(message: dict | bytes, length: int | str | None = None, extra_headers: bytes = b"") -> bytes:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    length = len(body) if length is None else length
    return extra_headers + f"Content-Length: {length}\r\n\r\n".encode() + body


def request(i: int) -> dict:
    return {"jsonrpc": "2.0", "id": i, "method": "textDocument/hover", "params": {"x": "é😀"}}


def bodies(frames) -> list[dict]:
    """The framed bodies that are JSON."""
    parsed = []
    for f in frames:
        if f.problem is None:
            try:
                parsed.append(json.loads(f.body))
            except ValueError:
                pass
    return parsed


@given(cuts=st.lists(st.integers(0, 400), max_size=10))
@settings(max_examples=200, deadline=None)
def test_any_chunking(cuts: list[int]) -> None:
    data = b"".join(frame(request(i)) for i in range(3)) + frame(
        request(3), extra_headers=b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n"
    )
    reader = MessageReader()
    frames = []
    previous = 0
    for cut in sorted(min(c, len(data)) for c in cuts) + [len(data)]:
        frames += reader.feed(data[previous:cut])
        previous = cut
    assert bodies(frames) == [request(i) for i in range(4)]
    assert all(f.problem is None for f in frames)
    assert not reader.pending


def test_bad_content_length_resynchronises() -> None:
    reader = MessageReader()
    frames = reader.feed(frame(request(1), length="abc") + frame(request(2)))
    assert bodies(frames) == [request(2)]
    garbage = [f for f in frames if f.problem and f.body]
    assert [recover_id(f.body) for f in garbage] == [1]  # the bad one can still be answered


def test_bad_content_length_as_the_last_message_is_reported_after_a_stall() -> None:
    reader = MessageReader()
    frames = reader.feed(frame(request(1), length="12x"))
    assert bodies(frames) == []
    stalled = reader.flush_stalled()
    assert [recover_id(f.body) for f in stalled if f.body] == [1]
    assert bodies(reader.feed(frame(request(2)))) == [request(2)]


def test_missing_content_length() -> None:
    reader = MessageReader()
    frames = reader.feed(b"Content-Type: x\r\n\r\n" + json.dumps(request(1)).encode() + frame(request(2)))
    assert bodies(frames) == [request(2)]
    assert any(recover_id(f.body) == 1 for f in frames if f.problem)


def test_content_length_too_short() -> None:
    reader = MessageReader()
    frames = reader.feed(frame(request(1), length=10) + frame(request(2)))
    # The first 10 bytes are a body that is not JSON: message 1 is garbage up to message 2's header, answered once.
    assert bodies(frames) == [request(2)]
    assert [recover_id(f.body) for f in frames] == [1, 2]


def test_content_length_too_long_is_cut_at_the_next_header_after_a_stall() -> None:
    reader = MessageReader()
    first = json.dumps(request(1)).encode()
    frames = reader.feed(f"Content-Length: {len(first) + 500}\r\n\r\n".encode() + first + frame(request(2)))
    assert bodies(frames) == []
    frames = reader.flush_stalled()
    assert recover_id(frames[0].body) == 1
    assert bodies(frames) == [request(2)]


def test_stall_keeps_a_header_in_progress() -> None:
    reader = MessageReader()
    assert reader.feed(b"Content-Len") == []
    assert reader.flush_stalled() == []
    assert bodies(reader.feed(b"gth: " + frame(request(1))[len(b"Content-Length: ") :])) == [request(1)]


def test_recover_id() -> None:
    assert recover_id(json.dumps(request(7)).encode()) == 7
    assert recover_id(b'{"jsonrpc":"2.0","id":"abc","method":"x","params":{"a":') == "abc"
    assert recover_id(b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":3}}') is None
    assert recover_id(b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":3') is None
    assert recover_id(b':"2.0","id":5,"method":"x"}') == 5
    assert recover_id(b'{"jsonrpc":"2.0","result":1,"id":4}') is None  # a response, not a request
    assert recover_id(b"\xff\xfe garbage") is None


def feed_all(reader: MessageReader, data: bytes, chunk: int) -> list:
    frames = []
    for i in range(0, len(data), chunk):
        frames += reader.feed(data[i : i + chunk])
    return frames


@given(excess=st.integers(1, 400), chunk=st.sampled_from([1, 7, 64, 10_000]))
@settings(max_examples=150, deadline=None)
def test_a_content_length_too_long_never_loses_the_messages_that_follow(excess: int, chunk: int) -> None:
    """The announced body runs into the next message (and maybe the ones after): each one that follows is still
    read (at the latest when the input pauses, as it does when a client waits for an answer), and the bad one
    can still be answered."""
    first = json.dumps(request(1)).encode()
    data = f"Content-Length: {len(first) + excess}\r\n\r\n".encode() + first
    data += b"".join(frame(request(i)) for i in range(2, 6))
    reader = MessageReader()
    frames = feed_all(reader, data, chunk) + reader.flush_stalled()
    assert [m["id"] for m in bodies(frames)] == [2, 3, 4, 5]
    assert any(f.problem and recover_id(f.body) == 1 for f in frames)
    assert not reader.pending


def test_a_content_length_too_long_is_resolved_without_a_pause_when_more_messages_follow() -> None:
    first = json.dumps(request(1)).encode()
    data = f"Content-Length: {len(first) + 20}\r\n\r\n".encode() + first
    data += b"".join(frame(request(i)) for i in range(2, 6))
    assert [m["id"] for m in bodies(MessageReader().feed(data))] == [2, 3, 4, 5]


def test_a_body_that_is_not_json_but_has_the_right_length_is_answered_at_once() -> None:
    reader = MessageReader()
    frames = reader.feed(frame(b'{"jsonrpc": "2.0", "id": 3, "method": "x", "params": {'))
    assert [recover_id(f.body) for f in frames] == [3]


def test_pretty_printed_json_with_blank_lines_is_one_message() -> None:
    body = b'{\r\n\r\n"jsonrpc": "2.0",\r\n\r\n "id": 1, "method": "textDocument/hover"}'
    assert bodies(MessageReader().feed(frame(body) + frame(request(2)))) == [json.loads(body), request(2)]
