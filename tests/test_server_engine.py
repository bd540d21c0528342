"""The worker's life seen from the client: settings pulled and reloaded, a model that cannot load, a worker
killed with SIGKILL, exit codes, TCP."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from lsprotocol import types

from tests.lsp_client import (
    REPO,
    SAMPLE,
    SAMPLE_POSITION,
    RawServer,
    capabilities,
    debug_state,
    inline,
    open_document,
    server_env,
    start_client,
    stop_client,
    tiny_settings,
    wait_engine,
    worker_pids,
)

URI = "file:///tmp/codegen-lsp-tests/engine.py"


async def wait_until(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


async def test_settings_pulled_then_reloaded_on_an_empty_change(tiny_model_dir) -> None:
    # VS Code style: the settings come from workspace/configuration, didChangeConfiguration has no payload.
    client = await start_client(
        tiny_settings(tiny_model_dir),
        capabilities(configuration=True),
        configuration={"codegenLsp": {"dtype": "bfloat16", "maxNewTokens": 4}},
    )
    try:
        state = await wait_engine(client)
        assert state["settings"]["dtype"] == "bfloat16" and state["settings"]["maxNewTokens"] == 4
        assert len(client.progress_reports) == 1  # pulled before the model started: loaded once
        open_document(client, URI, SAMPLE)
        assert (await inline(client, URI, *SAMPLE_POSITION)).items

        client.set_configuration({"codegenLsp": {"dtype": "float32"}})
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
        await wait_until(lambda: len(client.progress_reports) == 2, what="a second load")
        await wait_until(lambda: list(client.progress_reports.values())[-1][-1].kind == "end", what="loaded")
        state = await wait_engine(client)
        assert state["settings"]["dtype"] == "float32"
        assert (await inline(client, URI, *SAMPLE_POSITION)).items
    finally:
        await stop_client(client)
    assert client._server.returncode == 0  # exit after shutdown


async def test_bad_settings_and_a_model_that_cannot_load(tmp_path) -> None:
    missing = tmp_path / "no-such-model"
    client = await start_client(
        {"model": str(missing), "temperature": "hot", "maxNewTokens": -3, "colour": 1, "debounceMs": 0}
    )
    try:
        assert client.initialize_result.capabilities.inline_completion_provider is not None
        warning = next(m for m in client.messages if m.type == types.MessageType.Warning)
        assert '"temperature"' in warning.message and '"maxNewTokens"' in warning.message
        assert "colour" in warning.message
        await wait_engine(client, ("failed",))
        await wait_until(lambda: any(m.type == types.MessageType.Error for m in client.messages))
        error = next(m for m in client.messages if m.type == types.MessageType.Error)
        assert str(missing) in error.message
        state = await debug_state(client)
        assert state["settings"]["temperature"] == 0.0 and state["settings"]["maxNewTokens"] == 64
        open_document(client, URI, SAMPLE)
        started = time.monotonic()
        assert not (await inline(client, URI, *SAMPLE_POSITION)).items  # answered, not left hanging
        assert time.monotonic() - started < 2
        assert (
            await client.workspace_execute_command_async(
                types.ExecuteCommandParams(command="codegenLsp.debugDocumentText", arguments=[URI])
            )
        ) == SAMPLE
        client.exit(None)  # without shutdown: exit code 1
        assert await asyncio.wait_for(client._server.wait(), 30) == 1
    finally:
        await client.stop()


async def test_worker_killed_mid_session(tiny_model_dir) -> None:
    client = await start_client(tiny_settings(tiny_model_dir))
    try:
        await wait_engine(client)
        open_document(client, URI, SAMPLE)
        before = (await inline(client, URI, *SAMPLE_POSITION)).items
        assert before
        (worker,) = worker_pids(client._server.pid)
        os.kill(worker, signal.SIGKILL)
        await wait_until(
            lambda: any("exited unexpectedly" in m.message for m in client.messages),
            what="the crash to be shown",
        )
        started = time.monotonic()
        other = URI.replace("engine.py", "engine2.py")  # the same request for URI is answered from memory
        open_document(client, other, SAMPLE)
        result = await inline(client, other, *SAMPLE_POSITION)  # waits for the restarted worker
        assert [i.insert_text for i in result.items] == [i.insert_text for i in before]
        assert time.monotonic() - started < 60
        assert worker_pids(client._server.pid) not in ([], [worker])
        assert (await debug_state(client))["stats"]["engine_requests"] == 2
        assert (await debug_state(client))["engine"] == "ready"
    finally:
        await stop_client(client)


def test_tcp_listens_on_localhost_only() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "codegen_lsp.lsp_server", "--tcp", "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=server_env(),
        cwd=REPO,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline().decode()
        match = re.search(r"listening on ([\d.]+):(\d+)", line)
        assert match, line
        assert match.group(1) == "127.0.0.1"
        with socket.create_connection(("127.0.0.1", int(match.group(2))), timeout=30) as sock:
            stream = sock.makefile("rwb")

            def send(message: dict) -> None:
                body = json.dumps(message).encode()
                stream.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                stream.flush()

            def receive() -> dict:
                length = 0
                while (header := stream.readline()) != b"\r\n":
                    if header.lower().startswith(b"content-length"):
                        length = int(header.split(b":")[1])
                return json.loads(stream.read(length))

            send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}})
            assert receive()["result"]["capabilities"]["inlineCompletionProvider"] is not None
            send({"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
            assert receive() == {"jsonrpc": "2.0", "id": 2, "result": None}
            send({"jsonrpc": "2.0", "method": "exit"})
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_client_gone_ends_server_and_worker(tiny_model_dir) -> None:
    server = RawServer()
    server.initialize(tiny_settings(tiny_model_dir))
    deadline = time.monotonic() + 30
    while not (workers := worker_pids(server.process.pid)):
        assert time.monotonic() < deadline, "no worker started"
        time.sleep(0.05)
    assert server.process.stdin is not None
    server.process.stdin.close()  # the editor died: no shutdown, no exit
    assert server.process.wait(30) == 1
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "the worker outlived the server"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False


async def test_an_opened_document_is_prefilled_before_the_first_keystroke(tiny_model_dir) -> None:
    client = await start_client(tiny_settings(tiny_model_dir))
    try:
        await wait_engine(client)
        open_document(client, URI, SAMPLE)
        deadline = time.monotonic() + 60
        while (await debug_state(client))["stats"].get("prefills", 0) < 1:
            assert time.monotonic() < deadline, "the opened document was never prefilled"
            await asyncio.sleep(0.1)
        open_document(client, URI + "-other", "   \n")  # nothing to prefill in a blank document
        assert (await inline(client, URI, *SAMPLE_POSITION)).items  # and completions work as before
        assert (await debug_state(client))["stats"]["prefills"] == 1
    finally:
        await stop_client(client)
