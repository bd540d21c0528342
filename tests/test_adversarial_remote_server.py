"""The remote backend under attack, seen from the editor: the language server over stdio (RawServer: every byte
it writes is checked) and its supervisor, against the misbehaving server of tests/hostile_openai_server.py."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time

from codegen_lsp.lsp_server.backends import BackendState
from codegen_lsp.lsp_server.backends.openai import TOKENIZER_PROBE, load_model_files
from codegen_lsp.lsp_server.settings import parse_settings
from codegen_lsp.lsp_server.status import StatusBoard
from codegen_lsp.lsp_server.supervisor import Supervisor
from tests import hostile_openai_server as hostile
from tests.lsp_client import SERVER_COMMAND, RawServer, server_env

TOKENS = load_model_files("bundled", None).tokenizer.encode(TOKENIZER_PROBE)
URI = "file:///tmp/codegen-lsp-tests/remote.py"
TEXT = "def add(a, b):\n    "


def remote_options(url: str, **extra) -> dict:
    return {"model": "bundled", "backend": "openai", "backendUrl": url, "debounceMs": 0, "backendTimeoutMs": 1500,
            "logLevel": "debug", **extra}  # fmt: skip


def ask(server: RawServer, request_id_hint: int = 0) -> dict:
    server.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": TEXT}},
    )
    params = {"textDocument": {"uri": URI}, "position": {"line": 1, "character": 4}, "context": {"triggerKind": 1}}
    return server.request("textDocument/inlineCompletion", params, timeout=60)


def wait_state(server: RawServer, states: tuple[str, ...]) -> None:
    for _ in range(600):
        state = server.request("workspace/executeCommand", {"command": "codegenLsp.debugState"})["result"]
        if state["engine"] in states:
            return
        time.sleep(0.1)
    raise AssertionError(f"engine never reached {states}")


def test_a_password_in_the_url_reaches_no_log_progress_message_or_answer():
    with hostile.HostileServer(TOKENS) as far:
        far.routes["/v1/completions"] = hostile.answer({"error": {"message": "boom"}}, 500)
        url = far.url.replace("http://", "http://alice:pa55w0rd@")
        server = RawServer()
        try:
            server.initialize(remote_options(url))
            wait_state(server, ("ready",))
            answer = ask(server)
            assert answer.get("result") in (None, {"items": []}, [])
            state = server.request("workspace/executeCommand", {"command": "codegenLsp.debugState"})
        finally:
            server.close()
        said = json.dumps(server.notifications) + json.dumps(answer) + json.dumps(state) + "".join(server.stderr_lines)
        assert "pa55w0rd" not in said and "alice" not in said
        assert "***@127.0.0.1" in said  # it was shown, redacted
        assert any("answered 500" in json.dumps(n) for n in server.notifications)


def test_a_wrong_shaped_answer_is_no_items_and_one_message_with_no_traceback():
    with hostile.HostileServer(TOKENS) as far:
        far.routes["/v1/completions"] = hostile.stream(hostile.events({"choices": ["not", "objects"]}))
        server = RawServer()
        try:
            server.initialize(remote_options(far.url))
            wait_state(server, ("ready",))
            answer = ask(server)
        finally:
            server.close()
    assert "error" not in answer, answer  # it was -32603 with a traceback in error.data
    shown = [n["params"]["message"] for n in server.notifications if n["method"] == "window/showMessage"]
    assert len([m for m in shown if "not an object" in m]) == 1 and not any("Traceback" in m for m in shown)


def test_a_bad_url_setting_is_one_warning_naming_it_without_its_password():
    settings, warnings = parse_settings({"backendUrl": "ftp://bob:hunter2@gpu:21/v1"})
    assert settings.backend.backend_url == "http://127.0.0.1:8000/v1"  # the default stands
    assert len(warnings) == 1 and "only http:// and https://" in warnings[0] and "hunter2" not in warnings[0]


def test_tcp_on_a_port_in_use_is_one_line_without_a_traceback():
    taken = socket.create_server(("127.0.0.1", 0))
    try:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*SERVER_COMMAND[:-1], "serve", "--tcp", "--port", str(port)],
            capture_output=True, text=True, timeout=60, env=server_env(),
        )  # fmt: skip
    finally:
        taken.close()
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr


# -- the supervisor: coalesced reloads, a stalled start holds nothing ---------------------------------------------


class Harness:
    """A Supervisor with its narrow callbacks, and settings a test changes as a client would."""

    def __init__(self, **options) -> None:
        self.settings, _ = parse_settings(options)
        self.shown: list[str] = []
        self.supervisor = Supervisor(
            settings=lambda: self.settings,
            show=lambda kind, message, once=None: self.shown.append(message),
            shutting_down=lambda: False,
            begin_progress=lambda message: None,
            status=StatusBoard(send=lambda status: None),
        )

    def change(self, **options) -> None:
        self.settings, _ = parse_settings(options, self.settings)


async def until(predicate, tries: int = 600) -> None:
    for _ in range(tries):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("never happened")


async def test_forty_settings_changes_cost_at_most_two_reloads():
    with hostile.HostileServer(TOKENS) as far:
        harness = Harness(**remote_options(far.url))
        await harness.supervisor.start()
        await until(lambda: harness.supervisor.backend is not None and harness.supervisor.backend.state.usable)
        await until(lambda: len(far.asked("/v1/models")) == 1)
        reloads = []
        for i in range(40):  # what server.py does for each didChangeConfiguration that needs a reload
            harness.change(backendTimeoutMs=2000 + i)
            reloads.append(asyncio.ensure_future(harness.supervisor.reload()))
            await asyncio.sleep(0)
        await asyncio.gather(*reloads)
        backend = harness.supervisor.backend
        await until(lambda: backend.state is BackendState.READY)
        assert backend.spec.timeout_ms == 2039  # the newest settings
        assert len(far.asked("/v1/models")) <= 3  # the start, the first reload, one for the 39 coalesced (was 41)
        await harness.supervisor.stop()


async def test_a_stalled_start_holds_no_settings_change_back():
    stalled = hostile.HostileServer(TOKENS)
    stalled.routes["/tokenize"] = hostile.trickle({"tokens": TOKENS}, every_s=1.0)  # minutes to answer
    with stalled, hostile.HostileServer(TOKENS) as good:
        harness = Harness(**remote_options(stalled.url, backendTimeoutMs=600000))
        await harness.supervisor.start()
        await until(lambda: len(stalled.asked("/tokenize")) == 1)  # the start is stalled in /tokenize now
        harness.change(backendUrl=good.url)
        await harness.supervisor.reload()
        backend = harness.supervisor.backend
        await until(lambda: backend.state is BackendState.READY)
        assert backend.spec.url == good.url
        assert stalled.finished["/tokenize"] == 0  # switched while the stalled answer was still trickling
        await harness.supervisor.stop()
