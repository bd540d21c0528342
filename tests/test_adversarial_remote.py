"""The remote backend against a misbehaving OpenAI-compatible server (tests/hostile_openai_server.py, 127.0.0.1):
whatever the server does, every call ends by its deadline with a bounded number of bytes read, each failure is
one clear message said once (no URL password in it), and what the editor gets is well-formed.

No timing assertions: a slow answer is one the server would take a minute or more to finish, and the tests check
that the client hung up before it did (`finished`), not how fast.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from codegen_lsp.inference.protocol import CompletionRequest, GenerationOptions
from codegen_lsp.lsp_server.backends import BackendError, BackendState, RemoteSpec
from codegen_lsp.lsp_server.backends.openai import TOKENIZER_PROBE, OpenAIBackend, load_model_files
from codegen_lsp.lsp_server.backends.openai_http import LINE_BYTES, RemoteError, RemoteFailure, check_url, redact
from tests import hostile_openai_server as hostile

FILES = load_model_files("bundled", None)
PROBE_TOKENS = FILES.tokenizer.encode(TOKENIZER_PROBE)
PROMPT = "def add(a, b):\n"


@pytest.fixture
def server():
    with hostile.HostileServer(PROBE_TOKENS) as running:
        yield running


class Said:
    """What the backend told the person (the supervisor shows each as a popup)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def __call__(self, kind: str, message: str) -> None:
        self.messages.append((kind, message))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.messages]


def backend_for(url: str, said: Said | None = None, timeout_ms: int = 1000, **spec) -> OpenAIBackend:
    return OpenAIBackend(RemoteSpec(url, timeout_ms=timeout_ms, **spec), FILES, on_status=said)


def request(request_id: int = 1, prompt: str = PROMPT, **options) -> CompletionRequest:
    return CompletionRequest(request_id, "doc", prompt, GenerationOptions(**{"max_new_tokens": 8, **options}))


async def started(url: str, said: Said | None = None, **spec) -> OpenAIBackend:
    backend = backend_for(url, said, **spec)
    await backend.start()
    return backend


async def test_the_well_behaved_server_completes(server):
    backend = await started(server.url)
    try:
        assert backend.state is BackendState.READY
        result = await backend.generate(request())
        assert [c.text for c in result.candidates] == ["    return n"]
        sent = server.asked("/v1/completions")[0].json()
        assert sent["prompt"] == FILES.tokenizer.encode(PROMPT) and sent["stream"] is True
    finally:
        await backend.stop()


# -- 1. one deadline over every call ---------------------------------------------------------------------------


async def test_a_tokenize_answer_sent_one_byte_a_second_ends_at_the_deadline(server):
    server.routes["/tokenize"] = hostile.trickle({"tokens": PROBE_TOKENS}, every_s=1.0)  # ~150 s to finish
    said = Said()
    backend = await started(server.url, said, timeout_ms=1500)
    try:
        assert backend.state is BackendState.LOADING  # not ready; retried after the backoff
        assert said.kinds() == ["down"] and "no whole answer in 1500 ms" in said.messages[0][1]
        assert server.finished["/tokenize"] == 0  # the client hung up long before the answer's end
    finally:
        await backend.stop()


async def test_a_completion_stream_that_trickles_ends_at_the_deadline(server):
    server.routes["/v1/completions"] = hostile.stream(hostile.forever(b": keep-alive\n"), every_s=0.05)
    said = Said()
    backend = await started(server.url, said)
    try:
        with pytest.raises(RemoteError) as failed:
            await backend.generate(request())
        assert failed.value.failure is RemoteFailure.TIMEOUT
        assert said.kinds() == ["down"]
    finally:
        await backend.stop()


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(hostile.forever(b"\n"), id="empty lines"),
        pytest.param(hostile.forever(b": comment\n"), id="comments"),
        pytest.param(hostile.forever(b"x"), id="one line that never ends"),
    ],
)
async def test_endless_streams_end_by_the_deadline_or_the_byte_limit(server, lines):
    server.routes["/v1/completions"] = hostile.stream(lines)
    backend = await started(server.url)
    try:
        with pytest.raises(RemoteError) as failed:
            await backend.generate(request())
        assert failed.value.failure in (RemoteFailure.TIMEOUT, RemoteFailure.BAD_ANSWER)
        assert server.finished["/v1/completions"] == 0
        assert server.sent["/v1/completions"] < 64 << 20
    finally:
        await backend.stop()


# -- 2. bounded bodies -----------------------------------------------------------------------------------------


async def test_a_2_gb_error_body_is_read_a_few_kb_at_most(server):
    server.routes["/v1/completions"] = hostile.huge(500, 2 << 30)
    said = Said()
    backend = await started(server.url, said)
    try:
        with pytest.raises(RemoteError) as failed:
            await backend.generate(request())
        assert failed.value.failure is RemoteFailure.SERVER_ERROR and "answered 500" in failed.value.message
        assert said.kinds() == ["down"] and "answered 500" in said.messages[0][1]
        assert server.sent["/v1/completions"] < 64 << 20  # the socket buffers, not 2 GB
    finally:
        await backend.stop()


async def test_a_huge_models_list_is_refused_past_its_limit(server):
    server.routes["/v1/models"] = hostile.huge(200, 1 << 30)
    said = Said()
    backend = await started(server.url, said)
    try:
        assert said.kinds() == ["down"] and "more than 1024 KB" in said.messages[0][1]
        assert server.sent["/v1/models"] < 64 << 20
    finally:
        await backend.stop()


async def test_a_stream_line_longer_than_the_limit_is_refused(server):
    line = b"data: " + b"x" * (LINE_BYTES + 10) + b"\n"
    server.routes["/v1/completions"] = hostile.stream([line])
    backend = await started(server.url)
    try:
        with pytest.raises(RemoteError, match="line longer than 1 MB"):
            await backend.generate(request())
    finally:
        await backend.stop()


async def test_a_gzip_bomb_is_never_decompressed(server):
    server.routes["/v1/models"] = hostile.gzip_bomb(200 << 20)
    said = Said()
    backend = await started(server.url, said)
    try:
        assert said.kinds() == ["down"] and "gzip-compressed answer unasked" in said.messages[0][1]
        assert server.asked("/v1/models")[0].headers["accept-encoding"] == "identity"
    finally:
        await backend.stop()


# -- 3. credentials in the URL ---------------------------------------------------------------------------------


async def test_userinfo_in_the_url_is_never_shown_or_logged(server, caplog):
    server.routes["/v1/completions"] = hostile.huge(500, 4096)
    url = server.url.replace("http://", "http://alice:s3cret-pw@")
    said = Said()
    caplog.set_level(logging.DEBUG)
    backend = await started(url, said)
    try:
        with pytest.raises(RemoteError) as failed:
            await backend.generate(request())
        server.stop()
        await asyncio.sleep(0.3)  # the listener closes: the next try finds nothing there
        backend._down_until = 0
        with pytest.raises(BackendError) as unreachable:
            await backend.generate(request(2))
    finally:
        await backend.stop()
    shown = [failed.value.message, unreachable.value.message, *(m for _, m in said.messages), caplog.text]
    assert all("s3cret-pw" not in text and "alice" not in text for text in shown)
    assert "***@127.0.0.1" in failed.value.message


def test_redact_keeps_everything_but_the_userinfo():
    assert redact("http://u:p@w@host:8000/v1") == "http://***@host:8000/v1"
    assert redact("https://host/v1") == "https://host/v1"
    assert redact("http://[::1") == "http://[::1"


# -- 5. the shape of every answer --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "route, handler",
    [
        ("/v1/completions", hostile.stream(hostile.events([1, 2, 3]))),
        ("/v1/completions", hostile.stream(hostile.events({"choices": ["text"]}))),
        ("/v1/completions", hostile.stream(hostile.events({"choices": {"index": 0}}))),
        ("/v1/completions", hostile.stream(hostile.events({"choices": [{"index": "0", "text": 5}]}))),
        ("/v1/completions", hostile.stream(hostile.events({"choices": [{"token_ids": ["a"]}]}))),
        ("/v1/completions", hostile.stream([b"data: {not json\n\n"])),
    ],
    ids=["a list", "string choices", "choices an object", "wrong index and text", "token_ids", "not JSON"],
)
async def test_a_wrong_shaped_chunk_is_one_clear_error(server, route, handler):
    server.routes[route] = handler
    said = Said()
    backend = await started(server.url, said)
    try:
        with pytest.raises(RemoteError) as failed:
            await backend.generate(request())
        assert failed.value.failure is RemoteFailure.BAD_ANSWER
        assert "\n" not in failed.value.message and "/completions" in failed.value.message
        assert said.kinds() == ["down"]
    finally:
        await backend.stop()


@pytest.mark.parametrize(
    "body", [[{"id": hostile.MODEL}], {"data": 5}, {"data": [{"id": 7}]}, b"<html>", b""], ids=repr
)
async def test_a_wrong_shaped_models_list_is_said_once_and_not_stuck_loading(server, body):
    server.routes["/v1/models"] = hostile.answer(body)
    said = Said()
    backend = await started(server.url, said)
    try:
        assert said.kinds() == ["down"] and "/models" in said.messages[0][1]
        backend._down_until = 0
        with pytest.raises(BackendError):
            await backend.generate(request())
        assert said.kinds() == ["down"]  # once per outage
    finally:
        await backend.stop()


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", json.dumps({"tokens": "abc"}).encode()], ids=repr)
async def test_a_tokenize_of_another_shape_is_not_a_failure(server, body):
    server.routes["/tokenize"] = hostile.answer(body)
    backend = await started(server.url)
    try:
        assert backend.state is BackendState.READY  # other servers' /tokenize is taken on trust
    finally:
        await backend.stop()


# -- 7. each kind of refusal -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_key_stops_every_request_until_the_settings_change(server, status):
    server.routes["/v1/completions"] = hostile.answer({"error": {"message": "invalid key"}}, status)
    said = Said()
    backend = await started(server.url, said)
    try:
        for i in range(3):
            with pytest.raises(BackendError):
                await backend.generate(request(i))
        assert backend.state is BackendState.FAILED
        assert said.kinds() == ["failed"] and "refused the API key" in said.messages[0][1]
        assert len(server.asked("/v1/completions")) == 1  # nothing sent after the refusal
    finally:
        await backend.stop()


async def test_a_key_refused_while_requests_race_the_start_is_said_once(server):
    server.routes["/v1/models"] = hostile.answer({"error": {"message": "no"}}, 401)
    said = Said()
    backend = backend_for(server.url, said)
    start = asyncio.ensure_future(backend.start())
    await asyncio.sleep(0)
    racing = [asyncio.ensure_future(backend.generate(request(i))) for i in range(3)]
    await start
    for outcome in await asyncio.gather(*racing, return_exceptions=True):
        assert isinstance(outcome, BackendError)
    assert said.kinds() == ["failed"]
    await backend.stop()


async def test_429_waits_as_retry_after_says(server):
    server.routes["/v1/completions"] = hostile.answer({"error": {"message": "slow down"}}, 429, {"Retry-After": "120"})
    said = Said()
    backend = await started(server.url, said)
    try:
        with pytest.raises(RemoteError) as limited:
            await backend.generate(request())
        assert limited.value.failure is RemoteFailure.RATE_LIMITED
        for i in range(3):
            with pytest.raises(BackendError, match="next try in 1[12][0-9] s"):
                await backend.generate(request(i + 2))
        assert len(server.asked("/v1/completions")) == 1
        assert said.kinds() == ["down"] and "waiting 120 s" in said.messages[0][1]
    finally:
        await backend.stop()


async def test_a_404_looks_the_model_up_again(server):
    said = Said()
    backend = await started(server.url, said)
    try:
        server.routes["/v1/completions"] = hostile.answer({"error": {"message": "model gone"}}, 404)
        with pytest.raises(RemoteError):
            await backend.generate(request())
        server.routes["/v1/completions"] = hostile.completes("x")
        backend._down_until = 0
        assert (await backend.generate(request(2))).candidates
        assert len(server.asked("/v1/models")) == 2 and said.kinds() == ["down", "up"]
    finally:
        await backend.stop()


def too_long_unless_within(limit: int) -> hostile.Handler:
    """vLLM with --max-model-len `limit`: 400 when prompt + max_tokens exceed it."""

    def handle(conn, req):
        body = req.json()
        asked = len(body["prompt"]) + body["max_tokens"]
        if asked > limit:
            message = f"This model's maximum context length is {limit} tokens. However, you requested {asked} tokens."
            hostile.answer({"object": "error", "message": message, "code": 400}, 400)(conn, req)
        else:
            hostile.completes("ok")(conn, req)

    return handle


async def test_a_400_for_length_shrinks_the_window_and_keeps_token_ids(server):
    server.routes["/v1/completions"] = too_long_unless_within(64)
    said = Said()
    backend = await started(server.url, said)
    try:
        long_prompt = "".join(f"x_{i} = {i}\n" for i in range(200))
        result = await backend.generate(request(prompt=long_prompt))
        assert result.candidates[0].text == "ok" and result.prompt_tokens <= 64 - 8
        second = await backend.generate(request(2, prompt=long_prompt + "y = 1\n"))
        assert second.candidates
        asked = server.asked("/v1/completions")
        assert len(asked) == 3  # refused once, then every request fits
        assert all(isinstance(r.json()["prompt"], list) for r in asked)  # never switched to text prompts
        assert said.kinds() == []
    finally:
        await backend.stop()


async def test_a_400_to_token_ids_switches_to_text_once(server):
    def text_only(conn, req):
        if isinstance(req.json()["prompt"], list):
            hostile.answer({"error": {"message": "prompt must be a string"}}, 400)(conn, req)
        else:
            hostile.completes("ok")(conn, req)

    server.routes["/v1/completions"] = text_only
    backend = await started(server.url)
    try:
        assert (await backend.generate(request())).candidates[0].text == "ok"
        assert (await backend.generate(request(2))).candidates[0].text == "ok"
        assert [isinstance(r.json()["prompt"], str) for r in server.asked("/v1/completions")] == [False, True, True]
    finally:
        await backend.stop()


@pytest.mark.parametrize(
    "event",
    [
        {"error": {"message": "CUDA out of memory", "type": "InternalServerError", "code": 500}},
        {"object": "error", "message": "engine dead", "type": "InternalServerError", "code": 500},
    ],
)
async def test_an_error_event_inside_the_stream_is_said_once(server, event):
    server.routes["/v1/completions"] = hostile.stream(hostile.events({"choices": [{"text": "x"}]}, event))
    said = Said()
    backend = await started(server.url, said)
    try:
        with pytest.raises(RemoteError) as failed:
            await backend.generate(request())
        assert failed.value.failure is RemoteFailure.SERVER_ERROR and "stream ended in an error" in failed.value.message
        backend._down_until = 0
        with pytest.raises(RemoteError):
            await backend.generate(request(2))
        assert said.kinds() == ["down"]
    finally:
        await backend.stop()


async def test_a_redirect_is_not_followed(server):
    with hostile.HostileServer(PROBE_TOKENS) as elsewhere:
        server.routes["/v1/models"] = hostile.redirect(elsewhere.url + "/models")
        said = Said()
        backend = await started(server.url, said)
        try:
            assert backend.state is BackendState.FAILED
            assert said.kinds() == ["failed"] and "redirects are not followed" in said.messages[0][1]
            assert elsewhere.requests == []
        finally:
            await backend.stop()


@pytest.mark.parametrize("handler", [hostile.hang_up, hostile.not_http], ids=["hangs up", "not HTTP"])
async def test_a_server_that_hangs_up_or_speaks_another_protocol_is_unreachable_not_a_crash(server, handler):
    server.routes["/v1/completions"] = handler
    said = Said()
    backend = await started(server.url, said)
    try:
        with pytest.raises(RemoteError) as failed:
            await backend.generate(request())
        assert failed.value.failure is RemoteFailure.UNREACHABLE
        assert said.kinds() == ["down"] and "unreachable" in said.messages[0][1]
    finally:
        await backend.stop()


async def test_a_request_that_looks_the_model_up_and_times_out_counts_one_failure(server):
    server.routes["/v1/models"] = hostile.trickle({"data": [{"id": hostile.MODEL}]}, every_s=1.0)
    said = Said()
    backend = await started(server.url, said, timeout_ms=1500)
    assert backend._failures == 1
    backend._down_until = 0
    with pytest.raises(BackendError):
        await backend.generate(request())  # its deadline and the lookup's run out together
    await asyncio.sleep(0.2)
    assert said.kinds() == ["down"] and backend._failures == 2  # one backoff step per outage try, not two
    await backend.stop()


# -- 11. text the editor can take --------------------------------------------------------------------------------


async def test_lone_surrogates_and_nul_from_the_server_reach_no_editor(server):
    chunk = b'data: {"choices": [{"index": 0, "text": "a\\ud800b\\u0000c\\udfff"}]}\n\n'
    server.routes["/v1/completions"] = hostile.stream([chunk, b"data: [DONE]\n\n"])
    backend = await started(server.url)
    try:
        (candidate,) = (await backend.generate(request())).candidates
        assert candidate.text == "a\ufffdb\ufffdc\ufffd"
        candidate.text.encode("utf-8")  # strict: a lone surrogate would raise here
    finally:
        await backend.stop()


# -- 12. settings that cannot work -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, said_part",
    [
        ("http://[::1", "not a valid URL"),
        ("ftp://127.0.0.1/v1", "only http:// and https://"),
        ("127.0.0.1:8000/v1", "has no scheme"),
        ("http://127.0.0.1:99999/v1", "not a valid URL"),
        ("http:///v1", "names no host"),
        ("http://127.0.0.1:8000/v1 ", "spaces or control characters"),
        ("http://u:pw@127.0.0.1:8000/v1?x=1", "query or fragment"),
    ],
)
async def test_a_url_that_cannot_work_is_one_clear_message_and_no_retry(url, said_part):
    said = Said()
    backend = await started(url, said)
    assert backend.state is BackendState.FAILED
    assert said.kinds() == ["failed"] and said_part in said.messages[0][1] and "pw@" not in said.messages[0][1]
    with pytest.raises(BackendError):
        await backend.generate(request())
    assert check_url(url) is not None
    await backend.stop()


@pytest.mark.parametrize(
    "key, said_part",
    [("abc\ndef", "newlines"), ("clé-secrète", "other than ASCII"), ("abc def", "spaces"), ("", "is not set")],
)
async def test_a_key_that_cannot_be_sent_is_one_clear_message(server, monkeypatch, key, said_part):
    monkeypatch.setenv("CODEGEN_TEST_KEY", key)
    said = Said()
    backend = await started(server.url, said, api_key_env="CODEGEN_TEST_KEY")
    assert backend.state is BackendState.FAILED
    assert said.kinds() == ["failed"] and said_part in said.messages[0][1]
    assert key.strip() == "" or key not in said.messages[0][1]
    assert server.requests == []
    await backend.stop()


async def test_the_key_is_sent_as_a_bearer_token(server, monkeypatch):
    monkeypatch.setenv("CODEGEN_TEST_KEY", "sk-good")
    backend = await started(server.url, api_key_env="CODEGEN_TEST_KEY")
    try:
        assert backend.state is BackendState.READY
        assert server.asked("/v1/models")[0].headers["authorization"] == "Bearer sk-good"
    finally:
        await backend.stop()


async def test_an_error_that_echoes_the_key_does_not_show_it(server, monkeypatch):
    monkeypatch.setenv("CODEGEN_TEST_KEY", "sk-very-secret")
    server.routes["/v1/completions"] = hostile.answer({"error": {"message": "bad header Bearer sk-very-secret"}}, 500)
    said = Said()
    backend = await started(server.url, said, api_key_env="CODEGEN_TEST_KEY")
    try:
        with pytest.raises(RemoteError) as failed:
            await backend.generate(request())
        assert "sk-very-secret" not in failed.value.message and "Bearer ***" in failed.value.message
        assert all("sk-very-secret" not in message for _, message in said.messages)
    finally:
        await backend.stop()


def test_retry_after_reads_seconds_and_dates_and_caps_them():
    from codegen_lsp.lsp_server.backends.openai_http import RETRY_AFTER_MAX_S, retry_after_seconds

    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412500.0) == 10.0
    assert retry_after_seconds("99999999") == RETRY_AFTER_MAX_S
    assert (
        retry_after_seconds("-3") is None and retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    )


async def test_a_models_list_of_long_names_makes_a_short_message(server):
    names = [f"model-{i}-" + "x" * 5000 for i in range(150)]  # 750 KB: within the limit
    server.routes["/v1/models"] = hostile.answer({"data": [{"id": name} for name in names]})
    said = Said()
    backend = await started(server.url, said)
    try:
        assert said.kinds() == ["failed"] and "serves 150 models" in said.messages[0][1]
        assert len(said.messages[0][1]) < 2500
    finally:
        await backend.stop()
