"""A misbehaving OpenAI-compatible server for the remote backend's tests: slow, huge, malformed, endless,
redirecting, compressing, refusing. Raw sockets, so that every byte and its timing is the test's to choose.

On 127.0.0.1 only; one thread per connection; every loop ends when the client hangs up, after `CAP_S` seconds, or
when the server stops, and the server stops by itself after `lifetime_s`. Each route is a handler
`(Connection, Request) -> None`; `HostileServer.routes` starts as a well-behaved vLLM (one model, `/tokenize`, a
streamed completion) and a test swaps what it attacks with. What was asked and how far each answer got are kept
for the test to check (`requests`, `sent`, `finished`).
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

MODEL = "codegen-bundled"
CAP_S = 60.0  # the longest any one answer goes on
MAX_REQUEST_BYTES = 4 << 20


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Connection:
    sock: socket.socket
    server: HostileServer
    path: str
    sent: int = 0
    closed_by_client: bool = False

    def send(self, data: bytes) -> bool:
        """False once the client has gone (or the server stops): the handler ends."""
        if self.server.stopping.is_set():
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed_by_client = True
            return False
        self.sent += len(data)
        self.server.sent[self.path] += len(data)
        return True

    def head(self, status: int = 200, headers: dict[str, str] | None = None, length: int | None = None) -> bool:
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", "Connection: close"]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        return self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    def chunk(self, data: bytes) -> bool:
        """One chunk of a `Transfer-Encoding: chunked` body."""
        return self.send(b"%x\r\n%s\r\n" % (len(data), data)) if data else True

    def pause(self, seconds: float) -> bool:
        return not self.server.stopping.wait(seconds)


REASONS = {200: "OK", 302: "Found", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
REASONS |= {429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
Handler = Callable[[Connection, Request], None]


# -- answers ------------------------------------------------------------------------------------------------------


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    """A whole answer: JSON for anything but bytes."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()

    def handle(conn: Connection, request: Request) -> None:
        if conn.head(status, {"Content-Type": "application/json", **(headers or {})}, len(data)):
            conn.send(data)

    return handle


def trickle(body: Any, every_s: float = 1.0) -> Handler:
    """A valid answer, one byte every `every_s` seconds."""
    data = json.dumps(body).encode()

    def handle(conn: Connection, request: Request) -> None:
        if not conn.head(200, {"Content-Type": "application/json"}, len(data)):
            return
        for i in range(len(data)):
            if not conn.pause(every_s) or not conn.send(data[i : i + 1]):
                return
        conn.server.finished[request.path] += 1

    return handle


def huge(status: int, total_bytes: int, chunk: int = 1 << 20) -> Handler:
    """An answer of `total_bytes` (sent until the client hangs up), with a Content-Length."""

    def handle(conn: Connection, request: Request) -> None:
        if not conn.head(status, {"Content-Type": "text/plain"}, total_bytes):
            return
        block, left = b"x" * chunk, total_bytes
        deadline = time.monotonic() + CAP_S
        while left > 0 and time.monotonic() < deadline:
            if not conn.send(block[: min(chunk, left)]):
                return
            left -= chunk
        conn.server.finished[request.path] += 1

    return handle


def stream(lines: Iterable[bytes], *, every_s: float = 0.0, status: int = 200) -> Handler:
    """A chunked server-sent-event body, line by line (a line is sent as it is: add b"\\n" yourself)."""

    def handle(conn: Connection, request: Request) -> None:
        headers = {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked"}
        if not conn.head(status, headers):
            return
        deadline = time.monotonic() + CAP_S
        for line in lines:
            if time.monotonic() > deadline or not conn.chunk(line):
                return
            if every_s and not conn.pause(every_s):
                return
        if conn.send(b"0\r\n\r\n"):
            conn.server.finished[request.path] += 1

    return handle


def forever(line: bytes) -> Iterable[bytes]:
    while True:
        yield line


def events(*payloads: Any, done: bool = True) -> list[bytes]:
    """`data: <json>` lines, each followed by the blank line that ends an event, then `data: [DONE]`."""
    lines = [b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads]
    return lines + ([b"data: [DONE]\n\n"] if done else [])


def completion_chunks(texts: list[str], n: int = 1, token_id: int = 198) -> list[dict]:
    """Chunks that stream `texts` to each of n choices, then finish them by length."""
    chunks = [{"choices": [{"index": i, "text": t, "token_ids": [token_id]} for i in range(n)]} for t in texts]
    chunks.append({"choices": [{"index": i, "text": "", "finish_reason": "length"} for i in range(n)]})
    return chunks


def completes(*texts: str) -> Handler:
    """A well-behaved `/v1/completions`: every choice the request asks for streams `texts`."""

    def handle(conn: Connection, request: Request) -> None:
        n = int((request.json() or {}).get("n", 1))
        stream(events(*completion_chunks(list(texts), n)))(conn, request)

    return handle


def gzip_bomb(decompressed_bytes: int) -> Handler:
    """A 200 whose body is gzip of `decompressed_bytes` zeros (a few hundred KB on the wire per 200 MB)."""
    block = gzip.compress(b"\0" * decompressed_bytes, compresslevel=9)

    def handle(conn: Connection, request: Request) -> None:
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        if conn.head(200, headers, len(block)):
            conn.send(block)

    return handle


def redirect(location: str, status: int = 302) -> Handler:
    return answer(b"", status, {"Location": location})


def hang_up(conn: Connection, request: Request) -> None:
    """Close without a word."""


def not_http(conn: Connection, request: Request) -> None:
    """Another protocol on the port (an SSH server, say)."""
    conn.send(b"SSH-2.0-OpenSSH_9.6\r\n" + b"\x00\xff" * 64)


# -- the server ---------------------------------------------------------------------------------------------------


@dataclass
class HostileServer:
    tokens: list[int]  # what /tokenize answers for the backend's probe (ours: a well-behaved server)
    lifetime_s: float = 300.0
    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    sent: Counter = field(default_factory=Counter)  # path -> bytes sent
    finished: Counter = field(default_factory=Counter)  # path -> answers sent to their end

    def __post_init__(self) -> None:
        self.stopping = threading.Event()
        self.routes = {
            "/v1/models": answer({"object": "list", "data": [{"id": MODEL, "object": "model"}]}),
            "/tokenize": answer({"tokens": self.tokens, "count": len(self.tokens)}),
            "/v1/completions": completes("    return", " n"),
            **self.routes,
        }
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._started = time.monotonic()
        threading.Thread(target=self._accept, name="hostile-openai", daemon=True).start()

    def asked(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def stop(self) -> None:
        self.stopping.set()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        try:
            while not self.stopping.is_set() and time.monotonic() - self._started < self.lifetime_s:
                try:
                    sock, _ = self._listener.accept()
                except TimeoutError:
                    continue
                threading.Thread(target=self._serve, args=(sock,), daemon=True).start()
        finally:
            self.stopping.set()
            self._listener.close()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(CAP_S)
        try:
            request = _read_request(sock)
            if request is None:
                return
            self.requests.append(request)
            handler = self.routes.get(request.path, answer({"error": {"message": "no such route"}}, 404))
            handler(Connection(sock, self, request.path), request)
        except OSError:
            pass
        finally:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def _read_request(sock: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more or len(data) > MAX_REQUEST_BYTES:
            return None
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    first, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, _ = first.split(" ", 2)
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = min(int(headers.get("content-length", "0")), MAX_REQUEST_BYTES)
    while len(body) < length:
        more = sock.recv(65536)
        if not more:
            break
        body += more
    return Request(method, target.split("?", 1)[0], headers, body)
