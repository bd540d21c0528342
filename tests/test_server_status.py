"""The status the server sends every editor (`codegenLsp/status`) and the on/off switches editors flip
(`codegenLsp.setEnabled`, `codegenLsp.toggle`), over stdio with a real client and the real worker."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.lsp_client import (
    SAMPLE,
    SAMPLE_POSITION,
    SERVER_COMMAND,
    capabilities,
    debug_state,
    inline,
    open_document,
    server_env,
    stop_client,
    tiny_settings,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

STATUS = "codegenLsp/status"


async def start_watching(initialization_options: Any, env: dict[str, str] | None = None):
    """A client that keeps every status notification in `client.statuses`, in order."""
    from pytest_lsp import make_test_lsp_client

    client = make_test_lsp_client()
    client.statuses = []  # type: ignore[attr-defined]
    client.status_changed = asyncio.Event()  # type: ignore[attr-defined]

    @client.feature(STATUS)
    def on_status(params: Any) -> None:
        client.statuses.append(_plain(params))
        client.status_changed.set()

    await client.start_io(*SERVER_COMMAND, env=env or server_env())
    result = await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(),
            initialization_options=initialization_options,
            client_info=types.ClientInfo(name="codegen-lsp status tests"),
        )
    )
    client.initialize_result = result  # type: ignore[attr-defined]
    return client


def _plain(value: Any) -> Any:
    """pygls hands unknown notifications' params over as named tuples: back to JSON's shapes."""
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


async def wait_status(client, predicate, timeout: float = 120.0) -> dict:
    """The first status notification (from `client.seen` on) that satisfies `predicate`."""
    deadline = time.monotonic() + timeout
    while True:
        for status in client.statuses[getattr(client, "seen", 0) :]:
            if predicate(status):
                client.seen = client.statuses.index(status) + 1
                return status
        client.status_changed.clear()
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no such status; the last ones: {client.statuses[-3:]}")
        try:
            await asyncio.wait_for(client.status_changed.wait(), left)
        except asyncio.TimeoutError:
            pass


async def ask_status(client) -> dict:
    return _plain(await client.protocol.send_request_async(STATUS, None))


async def command(client, name: str, *arguments: Any) -> dict:
    params = types.ExecuteCommandParams(command=name, arguments=list(arguments))
    return _plain(await client.workspace_execute_command_async(params))


async def requests_to_backend(client) -> int:
    return (await debug_state(client))["stats"].get("engine_requests", 0)


_uris = iter(range(10**6))


def new_document(client, language_id: str = "python", text: str = SAMPLE) -> str:
    uri = f"file:///tmp/codegen-lsp-status/doc{next(_uris)}.py"
    open_document(client, uri, text, language_id)
    return uri


async def ghost_text(client, uri: str) -> list[str]:
    result = await inline(client, uri, *SAMPLE_POSITION)
    return [item.insert_text for item in result.items]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(tiny_model_dir):
    client = await start_watching(tiny_settings(tiny_model_dir))
    await wait_status(client, lambda s: s["state"] in ("ready", "error"))
    yield client
    await stop_client(client)


async def test_a_load_goes_from_loading_with_its_fraction_to_ready(client, tiny_model_dir) -> None:
    states = [s["state"] for s in client.statuses]
    assert states[0] in ("stopped", "loading") and states[-1] == "ready"
    assert set(states) <= {"stopped", "loading", "ready"}
    fractions = [s["fraction"] for s in client.statuses if s["fraction"] is not None]
    assert fractions and all(0 <= f <= 1 for f in fractions) and fractions == sorted(fractions)
    assert all(s["state"] == "loading" for s in client.statuses if s["fraction"] is not None)
    ready = client.statuses[-1]
    assert ready["message"] == "ready" and ready["fraction"] is None
    assert (ready["model"], ready["device"], ready["dtype"], ready["backend"]) == (
        str(tiny_model_dir),
        "cpu",
        "float32",
        "local",
    )
    assert ready["enabled"] is True and ready["lastLatencyMs"] is None
    assert await ask_status(client) == ready  # the request answers what the notification said


async def test_the_commands_are_advertised(client) -> None:
    provider = client.initialize_result.capabilities.execute_command_provider
    assert {"codegenLsp.setEnabled", "codegenLsp.toggle"} <= set(provider.commands)


async def test_busy_while_a_completion_generates_then_ready_with_its_latency(client) -> None:
    uri = new_document(client)
    client.seen = len(client.statuses)
    assert await ghost_text(client, uri)
    busy = await wait_status(client, lambda s: s["state"] == "busy")
    assert busy["message"] == "generating"
    after = await wait_status(client, lambda s: s["state"] == "ready" and s["lastLatencyMs"] is not None)
    assert after["lastLatencyMs"] > 0


async def test_switched_off_no_request_reaches_the_backend_and_on_again(client) -> None:
    uri = new_document(client)
    client.seen = len(client.statuses)
    off = await command(client, "codegenLsp.setEnabled", {"enabled": False})
    assert (off["state"], off["enabled"]) == ("disabled", False)
    assert (await wait_status(client, lambda s: s["state"] == "disabled")) == off
    sent = await requests_to_backend(client)
    for _ in range(3):
        assert await ghost_text(client, uri) == []
    assert await requests_to_backend(client) == sent
    assert (await debug_state(client))["stats"]["switched_off"] >= 3

    on = await command(client, "codegenLsp.setEnabled", {"enabled": True})
    assert (on["state"], on["enabled"]) == ("ready", True)
    await wait_status(client, lambda s: s["state"] == "ready")
    assert await ghost_text(client, uri)
    assert await requests_to_backend(client) == sent + 1


async def test_off_for_one_language_or_one_document(client) -> None:
    python, other = new_document(client), new_document(client)
    status = await command(client, "codegenLsp.setEnabled", {"enabled": False, "languageId": "python"})
    assert (status["state"], status["enabled"], status["disabledLanguages"]) == ("ready", True, ["python"])
    sent = await requests_to_backend(client)
    assert await ghost_text(client, python) == [] and await ghost_text(client, other) == []
    assert await requests_to_backend(client) == sent
    await command(client, "codegenLsp.setEnabled", {"enabled": True, "languageId": "python"})

    status = await command(client, "codegenLsp.setEnabled", {"enabled": False, "uri": python})
    assert status["disabledUris"] == [python] and status["disabledLanguages"] == []
    assert await ghost_text(client, python) == []
    assert await requests_to_backend(client) == sent
    assert await ghost_text(client, other)
    assert await requests_to_backend(client) == sent + 1
    status = await command(client, "codegenLsp.setEnabled", {"enabled": True, "uri": python})
    assert status["disabledUris"] == []
    assert await ghost_text(client, python)


async def test_a_snooze_ends_by_itself(client) -> None:
    uri = new_document(client)
    client.seen = len(client.statuses)
    snoozed = await command(client, "codegenLsp.setEnabled", {"enabled": False, "snoozeMinutes": 0.02})
    assert snoozed["state"] == "disabled" and snoozed["enabled"] is False
    assert snoozed["snoozedUntil"] > time.time() - 5 and snoozed["message"].startswith("snoozed until")
    assert await ghost_text(client, uri) == []
    woke = await wait_status(client, lambda s: s["state"] == "ready")  # sent by the server when the time is up
    assert woke["enabled"] is True and woke["snoozedUntil"] is None
    assert await ghost_text(client, uri)


async def test_toggle_flips_the_global_switch(client) -> None:
    uri = new_document(client)
    assert (await command(client, "codegenLsp.toggle"))["state"] == "disabled"
    assert await ghost_text(client, uri) == []
    assert (await command(client, "codegenLsp.toggle"))["state"] == "ready"
    assert await ghost_text(client, uri)


async def test_bad_switch_arguments_are_refused_with_the_reason(client) -> None:
    for arguments, reason in (
        ([], "one argument object"),
        ([{"enabled": "off"}], "enabled must be true or false"),
        ([{"enabled": False, "snoozeMinutes": -5}], "snoozeMinutes must be in"),
    ):
        with pytest.raises(JsonRpcException, match=reason):
            await command(client, "codegenLsp.setEnabled", *arguments)
    assert (await ask_status(client))["state"] == "ready"


async def test_a_broken_model_setting_is_an_error_with_the_reason(tmp_path) -> None:
    missing = tmp_path / "no-such-model"
    client = await start_watching(tiny_settings(missing))
    try:
        error = await wait_status(client, lambda s: s["state"] in ("ready", "error"))
        assert error["state"] == "error"
        assert str(missing) in error["message"] and error["fraction"] is None
        assert await ask_status(client) == error
    finally:
        await stop_client(client)


async def test_the_bundled_model_standing_in_is_named_as_such(tmp_path) -> None:
    """Offline with an uncached Hub id, the bundled model stands in: the status and the log say "bundled"."""
    client = await start_watching(
        {"model": "Salesforce/codegen-350M-mono", "device": "cpu", "dtype": "float32", "logLevel": "info"},
        env=server_env(HF_HUB_CACHE=str(tmp_path / "empty-hub")),
    )
    try:
        ready = await wait_status(client, lambda s: s["state"] in ("ready", "error"))
        assert (ready["state"], ready["model"]) == ("ready", "bundled")
    finally:
        await stop_client(client)
    logs = [m.message for m in client.log_messages]
    assert any("model: bundled ready on cpu" in line for line in logs), logs
    assert not any("codegen-350M-mono ready" in line for line in logs)


async def test_a_document_opened_while_off_is_not_prefilled(client) -> None:
    """Opening a document fills the worker's cache ahead (idle work), except where completions are off."""
    before = (await debug_state(client))["stats"].get("prefills", 0)
    await command(client, "codegenLsp.setEnabled", {"enabled": False, "languageId": "python"})
    new_document(client, text=SAMPLE + "# off\n")
    await command(client, "codegenLsp.setEnabled", {"enabled": True, "languageId": "python"})
    new_document(client, text=SAMPLE + "# on\n")  # queued after the first one's would have been
    deadline = time.monotonic() + 60
    while (await debug_state(client))["stats"].get("prefills", 0) == before and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # a second prefill, had there been one, would have been right behind
    assert (await debug_state(client))["stats"].get("prefills", 0) == before + 1
