"""The status object every editor renders, and the on/off switches: pure functions, no server."""

from __future__ import annotations

import asyncio

import pytest

from codegen_lsp.inference.checkpoint.hub import BUNDLED_MODEL_DIR
from codegen_lsp.inference.protocol import ErrorKind, LoadFailed, LoadProgress, ModelReady, WorkerExited
from codegen_lsp.lsp_server.status import (
    Health,
    State,
    StatusBoard,
    Switches,
    describe,
    loaded_model_name,
    loading_message,
)

NOW = 1_000_000.0
WIRE_KEYS = {
    "state",
    "message",
    "fraction",
    "model",
    "device",
    "dtype",
    "backend",
    "lastLatencyMs",
    "enabled",
    "snoozedUntil",
    "disabledLanguages",
    "disabledUris",
}


def test_the_wire_object_has_exactly_the_agreed_fields() -> None:
    status = describe(Health(), Switches(), busy=False, last_latency_ms=None, now=NOW)
    assert set(status) == WIRE_KEYS
    assert status == {
        "state": "stopped",
        "message": "stopped",
        "fraction": None,
        "model": None,
        "device": None,
        "dtype": None,
        "backend": "local",
        "lastLatencyMs": None,
        "enabled": True,
        "snoozedUntil": None,
        "disabledLanguages": [],
        "disabledUris": [],
    }


def test_busy_is_ready_at_work_and_off_outranks_everything() -> None:
    ready = Health(State.READY, "ready", model="m", device="cpu", dtype="float32")
    assert describe(ready, Switches(), busy=True, last_latency_ms=12.34, now=NOW)["state"] == "busy"
    assert describe(ready, Switches(), busy=True, last_latency_ms=12.34, now=NOW)["lastLatencyMs"] == 12.3
    loading = Health(State.LOADING, "loading 40%", fraction=0.4)
    assert describe(loading, Switches(), busy=True, last_latency_ms=None, now=NOW)["state"] == "loading"
    off = Switches(enabled=False)
    for health in (ready, loading, Health(State.ERROR, "broken")):
        status = describe(health, off, busy=True, last_latency_ms=None, now=NOW)
        assert (status["state"], status["message"], status["enabled"]) == ("disabled", "off", False)


def test_loading_messages_are_short() -> None:
    assert loading_message("loading layer 3 of 20", 0.15) == "loading 15%"
    assert loading_message("downloading 120 / 800 MB", 0.15) == "downloading 120 / 800 MB"
    assert loading_message("resolving bundled", None) == "resolving bundled"


def test_global_switch_language_and_document() -> None:
    switches = Switches()
    switches.set_enabled({"enabled": False, "languageId": "go"}, NOW)
    switches.set_enabled({"enabled": False, "uri": "file:///a.py"}, NOW)
    assert switches.allows("python", "file:///b.py", NOW)
    assert not switches.allows("go", "file:///b.go", NOW)
    assert not switches.allows("python", "file:///a.py", NOW)
    switches.set_enabled({"enabled": False}, NOW)
    assert not switches.allows("python", "file:///b.py", NOW)
    switches.set_enabled({"enabled": True}, NOW)
    switches.set_enabled({"enabled": True, "languageId": "go"}, NOW)
    assert switches.allows("go", "file:///b.go", NOW)
    assert switches.disabled_uris == {"file:///a.py"}


def test_snooze_runs_out_and_toggle_ends_it() -> None:
    switches = Switches()
    switches.set_enabled({"enabled": False, "snoozeMinutes": 30}, NOW)
    status = describe(Health(), switches, busy=False, last_latency_ms=None, now=NOW)
    assert (status["state"], status["enabled"], status["snoozedUntil"]) == ("disabled", False, NOW + 1800)
    assert status["message"].startswith("snoozed until ")
    assert switches.on(NOW + 1800) and switches.snoozed_until is None
    switches.set_enabled({"enabled": False, "snoozeMinutes": 30}, NOW)
    switches.toggle(NOW)
    assert switches.on(NOW) and switches.snoozed_until is None
    switches.toggle(NOW)
    assert not switches.on(NOW)


@pytest.mark.parametrize(
    ("argument", "complaint"),
    [
        (None, "one object"),
        ({}, "enabled must be true or false"),
        ({"enabled": "no"}, "enabled must be true or false"),
        ({"enabled": False, "language": "go"}, "unknown field(s) language"),
        ({"enabled": False, "languageId": ""}, "languageId must be a non-empty string"),
        ({"enabled": False, "uri": 3}, "uri must be a non-empty string"),
        ({"enabled": False, "snoozeMinutes": "30"}, "snoozeMinutes must be a number"),
        ({"enabled": False, "snoozeMinutes": float("nan")}, "snoozeMinutes must be a number"),
        ({"enabled": False, "snoozeMinutes": -1}, "snoozeMinutes must be in"),
        ({"enabled": True, "snoozeMinutes": 5}, "goes with enabled false"),
        ({"enabled": False, "snoozeMinutes": 5, "languageId": "go"}, "goes with enabled false"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(argument, complaint) -> None:
    switches = Switches()
    with pytest.raises(ValueError, match="codegenLsp.setEnabled") as info:
        switches.set_enabled(argument, NOW)
    assert complaint in str(info.value)
    assert switches == Switches()  # nothing changed


def test_the_model_named_is_the_one_loaded() -> None:
    assert loaded_model_name("Salesforce/codegen-350M-mono", str(BUNDLED_MODEL_DIR)) == "bundled"
    assert loaded_model_name("/models/mine", "/models/mine") == "/models/mine"


def test_worker_events_become_states() -> None:
    sent: list[dict] = []
    board = StatusBoard(sent.append, clock=lambda: NOW, interval_s=0.0)

    async def run() -> None:
        board.worker_event(LoadProgress("loading layer 1 of 2", 0.5), "m")
        board.worker_event(ModelReady("m", str(BUNDLED_MODEL_DIR), "cpu", "bfloat16", 2048, 100, 5.0), "m")
        board.generating(True)
        board.generating(False)
        board.answered(41.0)
        board.worker_event(WorkerExited("killed", restarting=True), "m")
        board.worker_event(LoadFailed(ErrorKind.MODEL_NOT_FOUND, "no such folder"), "m")

    asyncio.run(run())
    assert [s["state"] for s in sent] == ["loading", "ready", "busy", "ready", "ready", "loading", "error"]
    assert sent[0]["fraction"] == 0.5 and sent[0]["message"] == "loading 50%"
    assert (sent[1]["model"], sent[1]["device"], sent[1]["dtype"]) == ("bundled", "cpu", "bfloat16")
    assert sent[4]["lastLatencyMs"] == 41.0
    assert sent[-1]["message"] == "could not load 'm': no such folder" and sent[-1]["fraction"] is None


def test_updates_within_a_state_are_coalesced_but_the_latest_is_sent() -> None:
    sent: list[dict] = []

    async def run() -> None:
        board = StatusBoard(sent.append, clock=lambda: NOW, interval_s=0.05)
        for i in range(1, 101):
            board.loading("loading layer", i / 100)
        board.remote_event("down", "the server went away")  # a new state: at once
        await asyncio.sleep(0.1)
        board.close()

    asyncio.run(run())
    assert [s["fraction"] for s in sent[:1]] == [0.01]
    assert [s["state"] for s in sent] == ["loading", "remoteDown"]  # the 99 updates in between waited, then moot
