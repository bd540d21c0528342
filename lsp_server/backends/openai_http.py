"""Bounded HTTP for the remote backend: every answer is read within a byte limit, never decompressed, never
followed through a redirect, and each failure is one `RemoteError` of its own kind with one line for the person.

What a server can send is not trusted: a 2 GB error body costs at most `ERROR_BODY_BYTES`, a stream at most
`STREAM_BYTES` (and no line above `LINE_BYTES`), a JSON answer at most `JSON_BODY_BYTES`. Time is bounded by
the caller (one deadline over the whole call: httpx's timeout bounds each read, not the answer). URLs are
shown with their userinfo redacted. Nothing here imports torch.
"""

from __future__ import annotations

import enum
import json
import re
import time
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from codegen_lsp.inference.protocol import ErrorKind
from codegen_lsp.lsp_server.backends import BackendError

__all__ = [
    "RemoteError",
    "RemoteFailure",
    "RemoteHttp",
    "check_api_key",
    "check_url",
    "redact",
    "redact_urls",
    "url_problem",
]

ERROR_BODY_BYTES = 4096  # of an error answer: enough for its message
JSON_BODY_BYTES = 1 << 20  # /v1/models, /tokenize
LINE_BYTES = 1 << 20  # one line of a stream
STREAM_BYTES = 32 << 20  # one whole stream
RETRY_AFTER_MAX_S = 600.0


class RemoteFailure(str, enum.Enum):
    """Why a remote call failed; each kind has its own behaviour in the backend."""

    UNREACHABLE = "unreachable"  # refused, reset, name not found, a stream cut short
    TIMEOUT = "timeout"  # no whole answer within backendTimeoutMs
    REFUSED_KEY = "refused_key"  # 401, 403: stop until the settings change
    NOT_FOUND = "not_found"  # 404: a wrong URL, or the model went away
    RATE_LIMITED = "rate_limited"  # 429: wait as Retry-After says
    PROMPT_TOO_LONG = "prompt_too_long"  # 400: prompt + max_tokens exceed the server's --max-model-len
    REFUSED_REQUEST = "refused_request"  # another 4xx
    SERVER_ERROR = "server_error"  # 5xx, or an error event in the stream
    BAD_ANSWER = "bad_answer"  # not the API's shape, too big, compressed, a redirect
    BAD_SETTINGS = "bad_settings"  # the URL or the key cannot be used as they are


_KINDS = {
    RemoteFailure.UNREACHABLE: ErrorKind.OFFLINE,
    RemoteFailure.TIMEOUT: ErrorKind.TIMEOUT,
    RemoteFailure.REFUSED_KEY: ErrorKind.BAD_CONFIG,
    RemoteFailure.NOT_FOUND: ErrorKind.MODEL_NOT_FOUND,
    RemoteFailure.PROMPT_TOO_LONG: ErrorKind.BAD_REQUEST,
    RemoteFailure.REFUSED_REQUEST: ErrorKind.BAD_REQUEST,
    RemoteFailure.BAD_SETTINGS: ErrorKind.BAD_CONFIG,
}


class RemoteError(BackendError):
    """A remote call failed. `message` is one line for the person (the URL in it redacted)."""

    def __init__(
        self, failure: RemoteFailure, message: str, *, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(_KINDS.get(failure, ErrorKind.INTERNAL), message)
        self.failure = failure
        self.status = status
        self.retry_after_s = retry_after_s


# -- settings -----------------------------------------------------------------------------------------------------


def redact(url: str) -> str:
    """`url` without the password or user name it may carry (`http://***@host/v1`)."""
    return re.sub(r"(?<=//)[^/?#\s]*@", "***@", url, count=1)


def redact_urls(values: dict[str, Any]) -> dict[str, Any]:
    """A copy of `values` (settings on the wire) with every string value's URL userinfo redacted: for logs."""
    return {key: redact(value) if isinstance(value, str) else value for key, value in values.items()}


def url_problem(url: str) -> str | None:
    """None when `url` can be the remote backend's API base, else why not, in a few words (the settings hook:
    `Text(refuse=url_problem)`; no URL in the words, which may hold a password)."""
    if any(c.isspace() or not c.isprintable() for c in url):
        return "it holds spaces or control characters"
    if "://" not in url:
        return "it has no scheme (write http://host:port/v1)"
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when out of range or not a number
    except ValueError as error:
        return f"not a valid URL ({error})"
    if parts.scheme not in ("http", "https"):
        return f"only http:// and https:// servers are supported, not {parts.scheme}://"
    if not parts.hostname:
        return "it names no host"
    if port == 0:
        return "port 0 is no server's port"
    if parts.query or parts.fragment:
        return "it has a query or fragment (write the API base only, e.g. http://host:8000/v1)"
    return None


def check_url(url: object) -> str | None:
    """None when `url` can be the remote backend's API base, else one line naming it (redacted) and why not."""
    if not isinstance(url, str) or not url.strip():
        return "backendUrl is empty; write the API base, e.g. http://127.0.0.1:8000/v1"
    problem = url_problem(url)
    return None if problem is None else f"backendUrl {redact(url)!r}: {problem}"


def check_api_key(key: str, variable: str) -> str | None:
    """None when `key` can go in an Authorization header, else one line (which never shows the key)."""
    if not key.isascii():
        return f"the API key in {variable} holds characters other than ASCII; an HTTP header cannot carry them"
    if any(c.isspace() or not c.isprintable() for c in key):
        return f"the API key in {variable} holds spaces, newlines or control characters (copied with them?)"
    return None


# -- answers ------------------------------------------------------------------------------------------------------


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds (a number or an HTTP date), capped; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_MAX_S)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(0.0, when - (time.time() if now is None else now)), RETRY_AFTER_MAX_S)


_LENGTH = re.compile(r"maximum context length|max_model_len|context length|too long|is too large", re.IGNORECASE)


def error_message(body: bytes) -> str:
    """The message of an error answer (OpenAI's `{"error": {"message"}}`, vLLM's `{"message"}`), one short line."""
    text = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        inner = parsed.get("error", parsed)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if isinstance(message, str):
            text = message
    return " ".join(text.split())[:300]


def failure_for(status: int, message: str) -> RemoteFailure:
    if status in (401, 403):
        return RemoteFailure.REFUSED_KEY
    if status == 404:
        return RemoteFailure.NOT_FOUND
    if status == 429:
        return RemoteFailure.RATE_LIMITED
    if status in (400, 413, 422) and _LENGTH.search(message):
        return RemoteFailure.PROMPT_TOO_LONG
    if 300 <= status < 400:
        return RemoteFailure.BAD_ANSWER
    if 400 <= status < 500:
        return RemoteFailure.REFUSED_REQUEST
    return RemoteFailure.SERVER_ERROR


class RemoteHttp:
    """The backend's connection to one server (an httpx.AsyncClient that follows no redirect and asks for
    uncompressed answers), and the three kinds of call it makes, each bounded in bytes."""

    def __init__(self, base_url: str, api_key: str | None, read_timeout_s: float) -> None:
        import httpx

        headers = {"Accept-Encoding": "identity"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._key = api_key
        self.base = base_url.rstrip("/") + "/"
        self.shown = redact(base_url.rstrip("/"))
        self._client = httpx.AsyncClient(
            base_url=self.base, headers=headers, timeout=httpx.Timeout(read_timeout_s), follow_redirects=False
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def get_json(self, path: str) -> Any:
        return await self._json("GET", path, None)

    async def post_json(self, path: str, payload: dict) -> Any:
        return await self._json("POST", path, payload)

    async def _json(self, method: str, path: str, payload: dict | None) -> Any:
        async with self._open(method, path, payload) as response:
            await self._raise_for_status(response, path)
            body = await _read_at_most(response, JSON_BODY_BYTES, f"{self.shown}/{path}")
        try:
            return json.loads(body)
        except ValueError:
            raise RemoteError(RemoteFailure.BAD_ANSWER, f"{self.shown}/{path} did not answer JSON") from None

    async def events(self, path: str, payload: dict) -> AsyncIterator[Any]:
        """The JSON of each `data:` line of a server-sent-event stream, up to `[DONE]`. Closing the generator
        (aclosing) closes the connection, which makes vLLM abort the request."""
        async with self._open("POST", path, payload) as response:
            await self._raise_for_status(response, path)
            async for line in _lines(response, f"{self.shown}/{path}"):
                if not line.startswith(b"data:"):
                    continue  # comments (`: ping`), blank separators, event:/id:/retry: fields
                data = line[5:].strip()
                if data == b"[DONE]":
                    return
                try:
                    event = json.loads(data)
                except ValueError:
                    raise RemoteError(
                        RemoteFailure.BAD_ANSWER, f"{self.shown}/{path} streamed a line that is not JSON"
                    ) from None
                _raise_for_error_event(event, f"{self.shown}/{path}")
                yield event

    def _open(self, method: str, path: str, payload: dict | None):
        return _Guarded(self, method, path, payload)

    async def _raise_for_status(self, response: Any, path: str) -> None:
        where = f"{self.shown}/{path}"
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if response.status_code == 200 and encoding not in ("", "identity"):
            raise RemoteError(RemoteFailure.BAD_ANSWER, f"{where} sent a {encoding}-compressed answer unasked")
        if response.status_code == 200:
            return
        status = response.status_code
        if 300 <= status < 400:
            location = redact(response.headers.get("location", "?"))[:200]
            raise RemoteError(
                RemoteFailure.BAD_ANSWER,
                f"{where} redirects ({status} to {location}); redirects are not followed: set backendUrl to the "
                "server's own address",
                status=status,
            )
        body = b"" if encoding not in ("", "identity") else await _read_at_most(response, ERROR_BODY_BYTES, None)
        message = error_message(body)
        if self._key:  # a proxy that echoes the request's headers back: the key is never shown
            message = message.replace(self._key, "***")
        failure = failure_for(status, message)
        retry_after = retry_after_seconds(response.headers.get("retry-after")) if status in (429, 503) else None
        detail = f": {message}" if message else ""
        if failure is RemoteFailure.REFUSED_KEY:
            text = f"the completion server at {self.shown} refused the API key ({status}{detail})"
        else:
            text = f"the completion server at {self.shown} answered {status} to /{path}{detail}"
        raise RemoteError(failure, text, status=status, retry_after_s=retry_after)


class _Guarded:
    """`client.stream(...)` whose transport failures become RemoteError (UNREACHABLE), with the URL redacted
    and without the exception's chain (httpx's text can hold the URL with its userinfo)."""

    def __init__(self, http: RemoteHttp, method: str, path: str, payload: dict | None) -> None:
        self._http, self._method, self._path, self._payload = http, method, path, payload
        self._context: Any = None

    async def __aenter__(self) -> Any:
        import httpx

        try:
            self._context = self._http._client.stream(self._method, self._path, json=self._payload)
            return await self._context.__aenter__()
        except httpx.TimeoutException:
            raise RemoteError(RemoteFailure.TIMEOUT, f"{self._http.shown} did not answer in time") from None
        except (httpx.HTTPError, OSError, ValueError) as error:
            raise _unreachable(self._http.shown, error) from None
        except Exception as error:  # noqa: BLE001 - anyio's ExceptionGroup, an OverflowError for a bad port
            raise _unreachable(self._http.shown, error) from None

    async def __aexit__(self, kind, error, traceback) -> bool:
        import httpx

        try:
            await self._context.__aexit__(kind, error, traceback)
        except (httpx.HTTPError, OSError):
            pass  # closing a connection the server already dropped
        if isinstance(error, httpx.TimeoutException):
            raise RemoteError(RemoteFailure.TIMEOUT, f"{self._http.shown} did not answer in time") from None
        if isinstance(error, (httpx.HTTPError, OSError)):  # the stream broke off
            raise _unreachable(self._http.shown, error) from None
        return False


def _unreachable(shown: str, error: BaseException) -> RemoteError:
    return RemoteError(
        RemoteFailure.UNREACHABLE, f"the completion server at {shown} is unreachable ({type(error).__name__})"
    )


async def _read_at_most(response: Any, limit: int, where: str | None) -> bytes:
    """At most `limit` bytes of the body, raw (never decompressed). With `where`, a longer body is an error;
    without, it is cut (an error message needs its start only). The rest is never read: closing the response
    drops the connection."""
    chunks, size = [], 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            if where is not None:
                raise RemoteError(RemoteFailure.BAD_ANSWER, f"{where} answered more than {limit // 1024} KB")
            break
    return b"".join(chunks)[:limit]


async def _lines(response: Any, where: str) -> AsyncIterator[bytes]:
    """The stream's lines (without their end), each at most LINE_BYTES, STREAM_BYTES in all. Linear in the bytes
    however they are chunked (a line sent one byte at a time is not re-scanned per byte)."""
    line, total = bytearray(), 0
    async for chunk in response.aiter_raw():
        total += len(chunk)
        if total > STREAM_BYTES:
            raise RemoteError(RemoteFailure.BAD_ANSWER, f"{where} streamed more than {STREAM_BYTES >> 20} MB")
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            line += chunk[start:] if end < 0 else chunk[start:end]
            if len(line) > LINE_BYTES:
                raise RemoteError(
                    RemoteFailure.BAD_ANSWER, f"{where} streamed a line longer than {LINE_BYTES >> 20} MB"
                )
            if end < 0:
                break
            yield bytes(line).removesuffix(b"\r")
            line.clear()
            start = end + 1
    if line:
        yield bytes(line).removesuffix(b"\r")


def _raise_for_error_event(event: Any, where: str) -> None:
    """An error sent inside a stream that began with 200 (vLLM: `{"error": {...}}` or `{"object": "error"}`)."""
    if not isinstance(event, dict):
        return
    inner = event.get("error") if "error" in event else event if event.get("object") == "error" else None
    if inner is None:
        return
    message = inner.get("message") if isinstance(inner, dict) else inner
    code = inner.get("code") if isinstance(inner, dict) else None
    status = code if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600 else 500
    text = " ".join(str(message).split())[:300]
    raise RemoteError(
        failure_for(status, text), f"the completion server's stream ended in an error: {text}", status=status
    )
