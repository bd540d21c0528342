"""The team server path, end to end against a real vLLM (CPU build) serving `codegen-lsp export bundled`.

One vLLM for the module (about a minute to start on two cores). Greedy, float32 on both sides: the remote
completion must equal the local one, token for token. `CODEGEN_LSP_SKIP_VLLM=1` skips the module.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import pytest
from lsprotocol import types

from benchmarks.vllm_server import VllmServer, export_bundled, free_port, metrics, vllm_python
from codegen_lsp.inference.protocol import CompletionRequest, GenerationOptions
from codegen_lsp.lsp_server.backends.local import RequestCancelledError
from codegen_lsp.lsp_server.backends.openai import OpenAIBackend, RemoteSpec, load_model_files
from tests.lsp_client import debug_state, inline, open_document, start_client, stop_client, wait_engine

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

REPO = Path(__file__).resolve().parent.parent
SOURCE = (REPO / "examples" / "inventory.py").read_text()
URI = "file:///tmp/codegen-lsp-tests/inventory.py"


def serving_the_bundled_model(tmp_path_factory, name: str, **options):
    """vLLM serving the bundled model's export (VllmServer `options`), until the module's tests are done."""
    python = vllm_python()
    if python is None:
        pytest.skip("CODEGEN_LSP_SKIP_VLLM=1")
    folder = tmp_path_factory.mktemp(name)
    server = VllmServer(python, export_bundled(folder / "export"), folder / "vllm.log", **options)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def vllm(tmp_path_factory):
    yield from serving_the_bundled_model(tmp_path_factory, "vllm")


def settings(**extra):
    return {"model": "bundled", "device": "cpu", "dtype": "float32", "maxNewTokens": 24, "debounceMs": 0,
            "logLevel": "debug", **extra}  # fmt: skip


def remote(url: str, **extra):
    return settings(backend="openai", backendUrl=url, **extra)


def positions(text: str) -> list[tuple[int, int]]:
    """Ends of a few non-blank lines: multi-line completion points the bundled model continues."""
    lines = text.splitlines()
    chosen = [i for i, line in enumerate(lines) if line.strip() and not line.strip().startswith("#")][1::2][:8]
    return [(i, len(lines[i])) for i in chosen]


async def completions(options, text: str, points) -> list[list[str]]:
    client = await start_client(options)
    try:
        await wait_engine(client)
        open_document(client, URI, text)
        answers = []
        for line, character in points:
            result = await inline(client, URI, line, character)
            answers.append([item.insert_text for item in result.items])
        state = await debug_state(client)
        return answers, state
    finally:
        await stop_client(client)


async def test_remote_completions_equal_local_ones_over_lsp(vllm) -> None:
    points = positions(SOURCE)
    local, _ = await completions(settings(), SOURCE, points)
    far, state = await completions(remote(vllm.url), SOURCE, points)
    assert far == local
    assert sum(1 for items in local if items) >= 3  # the comparison is about real completions
    assert state["backend"] == "OpenAIBackend" and "torch" not in state["modules"]


def test_cli_complete_through_the_remote_backend_equals_the_local_one(vllm) -> None:
    line, character = positions(SOURCE)[0]

    def complete(*extra: str) -> dict:
        out = subprocess.run(
            [sys.executable, "-m", "codegen_lsp.lsp_server", "complete", "--model", "bundled", "--dtype", "float32",
             str(REPO / "examples" / "inventory.py"), "--line", str(line), "--character", str(character),
             "--json", *extra],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return json.loads(out.stdout)

    far = complete("--settings", json.dumps({"backend": "openai", "backendUrl": vllm.url}))
    near = complete()
    assert far["completion"] == near["completion"] and far["token_ids"] == near["token_ids"]


async def test_typing_hits_vllms_prefix_cache(vllm) -> None:
    before = metrics(vllm.url)
    client = await start_client(remote(vllm.url, maxNewTokens=4))
    try:
        await wait_engine(client)
        long = (Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py").read_text()
        cut = long.index("\n", 1400) + 1  # ~400 tokens: a dozen 32-token cache blocks
        text, typed = long[:cut], long[cut : cut + 24]
        open_document(client, URI, text)
        for version, char in enumerate(typed, start=2):
            line = text.count("\n")
            column = len(text) - (text.rfind("\n") + 1)
            client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=version),
                    content_changes=[types.TextDocumentContentChangePartial(
                        range=types.Range(start=types.Position(line=line, character=column),
                                          end=types.Position(line=line, character=column)),
                        text=char)],
                )
            )  # fmt: skip
            text += char
            await inline(client, URI, text.count("\n"), len(text) - (text.rfind("\n") + 1), invoked=True)
    finally:
        await stop_client(client)
    after = metrics(vllm.url)
    queries = after["vllm:prefix_cache_queries_total"] - before.get("vllm:prefix_cache_queries_total", 0)
    hits = after["vllm:prefix_cache_hits_total"] - before.get("vllm:prefix_cache_hits_total", 0)
    assert queries > 0 and hits / queries > 0.75  # every keystroke re-sends the same window prefix


async def test_a_cancelled_request_is_aborted_in_vllm(vllm) -> None:
    backend = OpenAIBackend(RemoteSpec(vllm.url, timeout_ms=60000), load_model_files("bundled", None))
    await backend.start()
    assert backend.state == "ready"
    # A repetitive prompt: the model goes on repeating it rather than ending the text early.
    prompt = "".join(f"    item_{i} = inventory.add('item_{i}', {i})\n" for i in range(12))
    long = GenerationOptions(max_new_tokens=400, context_tokens=100, temperature=1.0, num_candidates=8, seed=0)
    request = CompletionRequest(1, "doc", prompt, long)  # eight sequences of up to 400 tokens: seconds of work
    task = asyncio.create_task(backend.generate(request))
    try:
        await wait_for_metric(vllm.url, "vllm:num_requests_running", lambda v: v >= 1)
        backend.cancel(1)
        with pytest.raises(RequestCancelledError):
            await task
        await wait_for_metric(vllm.url, "vllm:num_requests_running", lambda v: v == 0, timeout=5)
    finally:
        await backend.stop()


async def wait_for_metric(url: str, name: str, ok, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while True:
        value = metrics(url).get(name, 0.0)
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} stayed at {value}")
        await asyncio.sleep(0.02)


class Switch:
    """A TCP forwarder on 127.0.0.1 in front of vLLM that can be switched off (connections refused) and on."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target = target_port
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._live: list[socket.socket] = []

    def on(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def off(self) -> None:
        """Refuse new connections and cut the open ones (the client keeps connections alive)."""
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept(); close() does not
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        for sock in self._live:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._live.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self._live += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


async def test_server_down_then_back_answers_every_request_and_says_so_once(vllm) -> None:
    switch = Switch(vllm.port)
    switch.on()
    url = f"http://127.0.0.1:{switch.port}/v1"
    client = await start_client(remote(url, backendTimeoutMs=3000))
    try:
        await wait_engine(client)
        open_document(client, URI, SOURCE)
        points = positions(SOURCE)
        line, character = points[0]
        assert (await inline(client, URI, line, character)).items
        switch.off()
        for where in points[1:6]:  # every request answered (no items), none waits past backendTimeoutMs
            started = time.monotonic()
            assert not (await inline(client, URI, *where)).items
            assert time.monotonic() - started < 3.0 + 2.0  # backendTimeoutMs, and the round trip: never a hang
        warnings = [m for m in client.messages if m.type == types.MessageType.Warning]
        assert len(warnings) == 1 and "completions resume" in warnings[0].message
        switch.on()
        deadline = time.monotonic() + 40
        while not (await inline(client, URI, line, character)).items:
            assert time.monotonic() < deadline, "never recovered"
            await asyncio.sleep(0.5)
        assert any("answers again" in m.message for m in client.messages)
    finally:
        switch.off()
        await stop_client(client)


async def test_wrong_model_name_and_bad_url_get_one_clear_message(vllm) -> None:
    client = await start_client(remote(vllm.url, backendModel="no-such-model"))
    try:
        await wait_engine(client, states=("failed",))
        open_document(client, URI, SOURCE)
        assert not (await inline(client, URI, 3, 0)).items
        errors = [m.message for m in client.messages if m.type == types.MessageType.Error]
        assert len(errors) == 1 and "does not serve 'no-such-model'" in errors[0] and "codegen-bundled" in errors[0]
    finally:
        await stop_client(client)
    client = await start_client(remote(f"http://127.0.0.1:{free_port()}/v1", backendTimeoutMs=1000))
    try:
        open_document(client, URI, SOURCE)
        deadline = time.monotonic() + 20
        while not any(m.type == types.MessageType.Warning for m in client.messages):
            assert time.monotonic() < deadline, "no message about the unreachable server"
            await asyncio.sleep(0.1)
        for where in positions(SOURCE)[:3]:
            assert not (await inline(client, URI, *where)).items
        warnings = [m.message for m in client.messages if m.type == types.MessageType.Warning]
        assert len(warnings) == 1 and "unreachable" in warnings[0]
    finally:
        await stop_client(client)


async def test_a_lone_surrogate_in_the_document_is_completed_remotely(vllm) -> None:
    backend = OpenAIBackend(RemoteSpec(vllm.url), load_model_files("bundled", None))
    await backend.start()
    try:
        prompt = SOURCE[:300] + '    name = "\ud800"\n'  # valid JSON ("\\ud800"), refused by every tokenizer
        result = await backend.generate(CompletionRequest(1, "doc", prompt, GenerationOptions(max_new_tokens=4)))
        assert result.candidates and result.prompt_tokens > 0
    finally:
        await backend.stop()


@pytest.fixture(scope="module")
def short_vllm(tmp_path_factory):
    """vLLM serving the same export with a --max-model-len of 256, half the model's context."""
    yield from serving_the_bundled_model(tmp_path_factory, "vllm-short", max_model_len=256)


async def test_a_server_with_a_shorter_max_model_len_gets_a_shorter_window_of_token_ids(short_vllm):
    """vLLM answers 400 ("maximum context length is 256 tokens"): the window shrinks to fit, the prompt stays
    token ids (it used to switch to text prompts for good), and the next request fits at once."""
    said = []
    backend = OpenAIBackend(RemoteSpec(short_vllm.url), load_model_files("bundled", None), lambda *a: said.append(a))
    await backend.start()
    try:
        text = (Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py").read_text()
        text = text[: text.index("\n", 3000) + 1]  # ~700 tokens: the window is 480, the server takes 256
        options = GenerationOptions(max_new_tokens=16, context_tokens=480)
        first = await backend.generate(CompletionRequest(1, "doc", text, options))
        assert first.candidates and 64 <= first.prompt_tokens and first.prompt_tokens + 16 <= 256
        assert not backend._send_text and said == []
        second = await backend.generate(CompletionRequest(2, "doc", text + "    pass\n", options))
        assert second.candidates and second.prompt_tokens <= first.prompt_tokens + 8
    finally:
        await backend.stop()
