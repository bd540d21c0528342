"""Framing LSP messages off a byte stream, and never losing the thread on bad input.

pygls' reader matches `Content-Length: N\\r\\n` exactly and reads N bytes. One bad header ("abc", a missing
header) desynchronises it for good: every later body is glued to the next header line, which then never
matches, so the server goes deaf. A body that is not JSON, or a request whose params do not fit the method's
types, is logged but never answered, and the client waits forever.

`MessageReader` finds headers wherever they are, reports bytes that are not a well-formed message as
garbage (the server answers the request they belong to when an id can be recovered: `recover_id`), and
resynchronises at the next header. `flush_stalled` is called when no byte arrived for a moment: a bad message
that was the last one sent is then reported instead of waiting for a header that never comes.

A wrong Content-Length shows as a body that is not JSON. Too long, it runs into the next message: a JSON body
can never hold a header (a raw line break cannot be inside a JSON string, and a bare word is never JSON), so
when a body does not parse and a header starts inside it, the reader cuts there and reads on from that header:
the messages that follow are never lost, and the broken one is reported whole (its request id answered).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Frame", "MessageReader", "recover_id"]

MAX_BODY_BYTES = 512 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024  # of bytes with no header end in sight before they are called garbage
_SEPARATOR = b"\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"content-length[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
_HEADER_LINE = re.compile(rb"[A-Za-z][A-Za-z0-9-]*[ \t]*:[^\r\n]*")
_MARKER = b"content-length"


@dataclass(frozen=True)
class Frame:
    """A message body as its header announced it, or bytes that were not a message (`problem` says why)."""

    body: bytes
    problem: str | None = None  # None: a framed JSON body; else `body` is garbage (maybe a truncated message)
    message: Any = None  # the body's JSON value when `problem` is None
    announced: bool = False  # garbage that was exactly the body a header announced (answered even without an id)


class MessageReader:
    def __init__(self) -> None:
        self._buffer = bytearray()
        self._length: int | None = None  # reading a body of this many bytes

    @property
    def pending(self) -> bool:
        return bool(self._buffer) or self._length is not None

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while True:
            if self._length is not None:
                if len(self._buffer) < self._length:
                    return frames
                frames.extend(self._body())
                continue
            end = self._buffer.find(_SEPARATOR)
            if end < 0:
                if len(self._buffer) > MAX_HEADER_BYTES:
                    frames.extend(self._drop_until_marker(len(self._buffer) - len(_MARKER), "no header"))
                return frames
            block = bytes(self._buffer[:end])
            del self._buffer[: end + len(_SEPARATOR)]
            frames.extend(self._header(block))

    def _body(self) -> list[Frame]:
        """The announced body is in the buffer: a message, or (not JSON) garbage up to the next header."""
        assert self._length is not None
        body = bytes(self._buffer[: self._length])
        try:
            message = json.loads(body)
        except (ValueError, RecursionError) as error:
            problem = f"the body is not JSON ({error})"
        else:
            del self._buffer[: self._length]
            self._length = None
            return [Frame(body, message=message)]
        # A wrong Content-Length, or a broken body: read on from the first header after the body's start.
        cut = self._next_header_start()
        if cut is not None:
            problem = "the body does not end where its Content-Length header says"
        else:  # the start of a header may still be on its way: keep it
            partial = len(self._buffer) - _partial_marker_length(self._buffer)
            cut = partial if 0 < partial < self._length else self._length
        announced, self._length = cut == self._length, None
        garbage = bytes(self._buffer[:cut])
        del self._buffer[:cut]
        return [Frame(garbage, problem, announced=announced)] if garbage else []

    def _next_header_start(self) -> int | None:
        """Where the first header block after the buffer's first byte starts (None: no header in sight)."""
        marker = self._buffer.lower().find(_MARKER, 1)
        if marker < 0:
            return None
        start = _header_block_start(bytes(self._buffer), marker)
        return start if start > 0 else marker

    def flush_stalled(self) -> list[Frame]:
        """Nothing arrived for a while: report what cannot be the start of a message, resynchronise."""
        if self._length is not None:
            # A Content-Length larger than what came: cut at the next header once that one is complete, or
            # report the body once it is whole JSON (a client waiting for the answer sends nothing more).
            cut = self._next_header_start()
            if cut is not None and self._buffer.find(_SEPARATOR, cut) >= 0:
                garbage = bytes(self._buffer[:cut])
                del self._buffer[:cut]
            elif cut is None and _is_whole_json(self._buffer):
                garbage = bytes(self._buffer)
                self._buffer.clear()
            else:
                return []
            self._length = None
            return [Frame(garbage, "the body is shorter than its Content-Length header"), *self.feed(b"")]
        if not self._buffer:
            return []
        marker = self._buffer.lower().find(_MARKER)
        if marker > 0:
            start = _header_block_start(bytes(self._buffer), marker)
            if start > 0:
                garbage = bytes(self._buffer[:start])
                del self._buffer[:start]
                return [Frame(garbage, "bytes outside any message")]
            return []
        if marker < 0 and (b"{" in self._buffer or b"}" in self._buffer or b"\n" in self._buffer):
            garbage = bytes(self._buffer)
            self._buffer.clear()
            return [Frame(garbage, "bytes outside any message")]
        if marker == 0 and b"{" in self._buffer:  # a body after a header that never ends ("\n\n" alone)
            garbage = bytes(self._buffer)
            self._buffer.clear()
            return [Frame(garbage, "a header that does not end with \\r\\n\\r\\n")]
        return []  # may be the start of a header still on its way

    def _header(self, block: bytes) -> list[Frame]:
        matches = list(_CONTENT_LENGTH.finditer(block))
        if not matches:
            return [Frame(block, "a header without Content-Length")] if block.strip() else []
        match = matches[-1]
        frames = []
        start = _header_block_start(block, match.start())
        if block[:start].strip():
            frames.append(Frame(block[:start], "bytes outside any message"))
        value = match.group(1).strip()
        if not value.isdigit() or int(value) > MAX_BODY_BYTES:
            shown = value[:40].decode("latin-1")
            frames.append(Frame(b"", f"a bad Content-Length header ({shown!r})"))
            return frames
        self._length = int(value)
        return frames

    def _drop_until_marker(self, limit: int, problem: str) -> list[Frame]:
        marker = self._buffer.lower().rfind(_MARKER, 0, None)
        cut = _header_block_start(bytes(self._buffer), marker) if marker > 0 else max(limit, 0)
        garbage = bytes(self._buffer[:cut])
        del self._buffer[:cut]
        return [Frame(garbage, problem)] if garbage else []


def _partial_marker_length(data: bytes) -> int:
    """How many of `data`'s last bytes could be the start of a "Content-Length" still on its way."""
    tail = data[-len(_MARKER) + 1 :].lower()
    for size in range(len(tail), 0, -1):
        if _MARKER.startswith(tail[-size:]):
            return size
    return 0


def _is_whole_json(data: bytearray) -> bool:
    if not data.rstrip().endswith((b"}", b"]")):
        return False
    try:
        json.loads(bytes(data))
    except (ValueError, RecursionError):
        return False
    return True


def _header_block_start(block: bytes, index: int) -> int:
    """Start of the header lines ending with the one at `index` (earlier well-formed header lines count)."""
    start = index
    while True:
        if start < 2 or block[start - 2 : start] != b"\r\n":
            return start
        previous = block.rfind(b"\r\n", 0, start - 2)
        line_start = previous + 2 if previous >= 0 else 0
        if not _HEADER_LINE.fullmatch(block[line_start : start - 2]):
            return start
        start = line_start


def recover_id(data: bytes) -> int | str | None:
    """The id of the request `data` was meant to be, when it can be told; None otherwise.

    Whole JSON: its top-level "id" (only for a request: it has a "method"). Broken JSON (a truncated body, the
    tail of a message whose header was wrong): the first "id" key at the outermost object level seen.
    """
    try:
        message = json.loads(data)
    except (ValueError, RecursionError):
        return _scan_for_id(data)
    if isinstance(message, dict) and "method" in message:
        value = message.get("id")
        if isinstance(value, int | str) and not isinstance(value, bool):
            return value
    return None


_ID_VALUE = re.compile(rb'\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")')


def _scan_for_id(data: bytes) -> int | str | None:
    depth = 0
    in_string = False
    i = 0
    n = len(data)
    while i < n:
        char = data[i]
        if in_string:
            if char == 0x5C:  # backslash
                i += 2
                continue
            if char == 0x22:
                in_string = False
            i += 1
            continue
        if char == 0x22:
            if data.startswith(b'"id"', i) and depth <= 1:
                match = _ID_VALUE.match(data, i + 4)
                if match:
                    value = match.group(1)
                    try:
                        parsed = json.loads(value)
                    except ValueError:
                        return None
                    return parsed if isinstance(parsed, int | str) else None
            in_string = True
        elif char in b"{[":
            depth += 1
        elif char in b"}]":
            depth -= 1
        i += 1
    return None
