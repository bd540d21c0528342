"""The server's status: one source of truth that every editor renders (a status bar item, a statusline, a
mode-line lighter), and the on/off switches the editors flip. Editors hold no second copy of either.

On the wire (method `codegenLsp/status`: a notification server -> client on every change, and a request
client -> server that answers the same object):

    {"state": "loading" | "ready" | "busy" | "remoteDown" | "error" | "disabled" | "stopped",
     "message": str,                  # short, for a status line ("loading 42%", "ready", the error)
     "fraction": float | None,        # loading: 0..1 when known
     "model": str | None, "device": str | None, "dtype": str | None,   # what is loaded (or served)
     "backend": "local" | "openai",
     "lastLatencyMs": float | None,   # the last completion that reached the backend, request to answer
     "enabled": bool,                 # the global switch; false while snoozed
     "snoozedUntil": float | None,    # unix seconds
     "disabledLanguages": [str], "disabledUris": [str]}

The switches change with `workspace/executeCommand`: `codegenLsp.setEnabled` with one argument object
`{"enabled": bool, "languageId"?: str, "uri"?: str, "snoozeMinutes"?: number}` (neither languageId nor uri:
the global switch; snoozeMinutes: off until then), and `codegenLsp.toggle` (flips the global switch). A document
that is switched off gets empty answers without a word to the backend; editors also stop asking.

`describe` is the pure part (facts -> the wire object); `StatusBoard` keeps the facts and sends what changes:
a change of state at once, updates within a state (loading fractions) at most every `UPDATE_INTERVAL_S`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from codegen_lsp.inference.checkpoint.hub import BUNDLED, BUNDLED_MODEL_DIR
from codegen_lsp.inference.protocol import LoadFailed, LoadProgress, ModelReady, WorkerEvent, WorkerExited

__all__ = [
    "COMMANDS",
    "SET_ENABLED_COMMAND",
    "STATUS_METHOD",
    "TOGGLE_COMMAND",
    "Health",
    "State",
    "StatusBoard",
    "Switches",
    "describe",
    "loaded_model_name",
]

STATUS_METHOD = "codegenLsp/status"
SET_ENABLED_COMMAND = "codegenLsp.setEnabled"
TOGGLE_COMMAND = "codegenLsp.toggle"
COMMANDS = (SET_ENABLED_COMMAND, TOGGLE_COMMAND)

UPDATE_INTERVAL_S = 0.2  # at most ~5 notifications a second within one state (loading fractions)
MAX_SNOOZE_MINUTES = 7 * 24 * 60
MAX_MESSAGE_CHARS = 300
MAX_SWITCHED_OFF = 1000  # languages or documents switched off one by one: a bound, not a limit anyone meets


class State(str, Enum):
    LOADING = "loading"
    READY = "ready"
    BUSY = "busy"
    REMOTE_DOWN = "remoteDown"
    ERROR = "error"
    DISABLED = "disabled"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Health:
    """What the backend is doing, as the supervisor last said (busy and disabled are added by `describe`)."""

    state: State = State.STOPPED
    message: str = "stopped"
    fraction: float | None = None
    model: str | None = None
    device: str | None = None
    dtype: str | None = None
    backend: str = "local"


@dataclass
class Switches:
    """On/off, as the person set it from an editor."""

    enabled: bool = True
    snoozed_until: float | None = None  # unix seconds
    disabled_languages: set[str] = field(default_factory=set)
    disabled_uris: set[str] = field(default_factory=set)

    def on(self, now: float) -> bool:
        """The global switch; a snooze that has run out is forgotten here."""
        if self.snoozed_until is not None and now >= self.snoozed_until:
            self.snoozed_until = None
        return self.enabled and self.snoozed_until is None

    def allows(self, language_id: str | None, uri: str, now: float) -> bool:
        return self.on(now) and language_id not in self.disabled_languages and uri not in self.disabled_uris

    def toggle(self, now: float) -> None:
        self.enabled = not self.on(now)
        self.snoozed_until = None

    def set_enabled(self, argument: Any, now: float) -> None:
        """`codegenLsp.setEnabled`'s argument object; ValueError (said to the client) on anything else."""
        if not isinstance(argument, dict):
            raise ValueError(f"{SET_ENABLED_COMMAND} takes one object {{enabled, languageId?, uri?, snoozeMinutes?}}")
        unknown = sorted(set(argument) - {"enabled", "languageId", "uri", "snoozeMinutes"})
        if unknown:
            raise ValueError(f"{SET_ENABLED_COMMAND}: unknown field(s) {', '.join(unknown)}")
        enabled = argument.get("enabled")
        if not isinstance(enabled, bool):
            raise ValueError(f"{SET_ENABLED_COMMAND}: enabled must be true or false, not {enabled!r}")
        language, uri, minutes = argument.get("languageId"), argument.get("uri"), argument.get("snoozeMinutes")
        for name, value in (("languageId", language), ("uri", uri)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{SET_ENABLED_COMMAND}: {name} must be a non-empty string, not {value!r}")
        if minutes is not None:
            if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not math.isfinite(minutes):
                raise ValueError(f"{SET_ENABLED_COMMAND}: snoozeMinutes must be a number, not {minutes!r}")
            if enabled or language is not None or uri is not None:
                raise ValueError(f"{SET_ENABLED_COMMAND}: snoozeMinutes goes with enabled false and the global switch")
            if not 0 < minutes <= MAX_SNOOZE_MINUTES:
                raise ValueError(f"{SET_ENABLED_COMMAND}: snoozeMinutes must be in (0, {MAX_SNOOZE_MINUTES}]")
            self.enabled, self.snoozed_until = True, now + minutes * 60
            return
        if language is not None:
            _switch(self.disabled_languages, language, enabled)
        if uri is not None:
            _switch(self.disabled_uris, uri, enabled)
        if language is None and uri is None:
            self.enabled, self.snoozed_until = enabled, None


def _switch(off: set[str], name: str, enabled: bool) -> None:
    if enabled:
        off.discard(name)
    elif len(off) < MAX_SWITCHED_OFF:
        off.add(name)
    else:
        raise ValueError(f"{SET_ENABLED_COMMAND}: {MAX_SWITCHED_OFF} are switched off already")


def describe(health: Health, switches: Switches, busy: bool, last_latency_ms: float | None, now: float) -> dict:
    """The wire object. Off outranks everything (the person asked for it); busy is ready at work."""
    state, message = health.state, health.message
    if not switches.on(now):
        state = State.DISABLED
        if switches.snoozed_until is not None:
            message = "snoozed until " + time.strftime("%H:%M", time.localtime(switches.snoozed_until))
        else:
            message = "off"
    elif state == State.READY and busy:
        state, message = State.BUSY, "generating"
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    return {
        "state": state.value,
        "message": message,
        "fraction": health.fraction if health.state == State.LOADING else None,
        "model": health.model,
        "device": health.device,
        "dtype": health.dtype,
        "backend": health.backend,
        "lastLatencyMs": None if last_latency_ms is None else round(last_latency_ms, 1),
        "enabled": switches.on(now),
        "snoozedUntil": switches.snoozed_until,
        "disabledLanguages": sorted(switches.disabled_languages),
        "disabledUris": sorted(switches.disabled_uris),
    }


def loaded_model_name(asked: str, folder: str) -> str:
    """The model that was loaded: the bundled one when it stood in for `asked` (offline), else `asked`."""
    try:
        bundled = Path(folder).resolve() == BUNDLED_MODEL_DIR
    except OSError:
        bundled = False
    return BUNDLED if bundled else asked


def loading_message(message: str, fraction: float | None) -> str:
    """Short: "loading 42%"; a download keeps its own words ("downloading 120 / 800 MB")."""
    if fraction is None or message.startswith("downloading"):
        return message
    return f"loading {fraction * 100:.0f}%"


class StatusBoard:
    """The facts, and the notifications they cause. `send` gets each wire object to send (the server drops it
    until the client is initialized); everything runs on the event loop."""

    def __init__(
        self,
        send: Callable[[dict], None],
        clock: Callable[[], float] = time.time,
        interval_s: float = UPDATE_INTERVAL_S,
    ) -> None:
        self._send = send
        self._clock = clock
        self._interval_s = interval_s
        self.health = Health()
        self.switches = Switches()
        self.last_latency_ms: float | None = None
        self._busy = 0
        self._sent: dict | None = None
        self._sent_at = -math.inf  # time.monotonic()
        self._flush: asyncio.TimerHandle | None = None
        self._snooze_end: asyncio.TimerHandle | None = None

    def current(self) -> dict:
        return describe(self.health, self.switches, self._busy > 0, self.last_latency_ms, self._clock())

    def allows(self, language_id: str | None, uri: str) -> bool:
        return self.switches.allows(language_id, uri, self._clock())

    # -- facts -------------------------------------------------------------------------------------------------

    def set(self, state: State, message: str, **facts: Any) -> None:
        """A new backend state; `facts` (model, device, dtype, backend, fraction) replace the ones given."""
        fraction = facts.pop("fraction", None)
        if state != State.LOADING:
            fraction = None
        self.health = replace(self.health, state=state, message=message, fraction=fraction, **facts)
        self.changed()

    def loading(self, message: str, fraction: float | None = None, **facts: Any) -> None:
        if fraction is not None:
            fraction = min(1.0, max(0.0, fraction))
        self.set(State.LOADING, loading_message(message, fraction), fraction=fraction, **facts)

    def worker_event(self, event: WorkerEvent, asked: str) -> None:
        """The local worker's loading events (`asked`: the model setting)."""
        if isinstance(event, LoadProgress):
            self.loading(event.message, event.fraction)
        elif isinstance(event, ModelReady):
            model = loaded_model_name(event.model, event.resolved)
            self.set(State.READY, "ready", model=model, device=event.device, dtype=event.dtype, backend="local")
        elif isinstance(event, LoadFailed):
            self.set(State.ERROR, f"could not load {asked!r}: {event.message}")
        elif isinstance(event, WorkerExited):
            if event.restarting:
                self.loading("restarting the model worker")
            else:
                self.set(State.ERROR, event.message)

    def remote_event(self, kind: str, message: str) -> None:
        """The remote backend went down ("down"), came back ("up") or cannot be used ("failed")."""
        if kind == "up":
            self.set(State.READY, "ready")
        elif kind == "down":
            self.set(State.REMOTE_DOWN, message)
        else:
            self.set(State.ERROR, message)

    def generating(self, started: bool) -> None:
        self._busy = max(0, self._busy + (1 if started else -1))
        self.changed()

    def answered(self, latency_ms: float) -> None:
        self.last_latency_ms = latency_ms
        self.changed()

    def set_enabled(self, argument: Any) -> dict:
        self.switches.set_enabled(argument, self._clock())
        self._watch_snooze()
        self.changed()
        return self.current()

    def toggle(self) -> dict:
        self.switches.toggle(self._clock())
        self._watch_snooze()
        self.changed()
        return self.current()

    # -- sending ----------------------------------------------------------------------------------------------

    def changed(self) -> None:
        status = self.current()
        if status == self._sent:
            return
        if self._sent is None or status["state"] != self._sent["state"]:
            self._send_now(status)  # a new state goes out at once
            return
        if self._flush is not None:
            return  # a send is due anyway, and it sends the latest
        elapsed = time.monotonic() - self._sent_at
        if elapsed >= self._interval_s:
            self._send_now(status)
        else:
            self._flush = asyncio.get_running_loop().call_later(self._interval_s - elapsed, self._send_due)

    def resend(self) -> None:
        """Send the current status whether or not it changed (the client just arrived)."""
        self._sent = None
        self.changed()

    def _send_due(self) -> None:
        self._flush = None
        status = self.current()
        if status != self._sent:
            self._send_now(status)

    def _send_now(self, status: dict) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self._sent, self._sent_at = status, time.monotonic()
        self._send(status)

    def _watch_snooze(self) -> None:
        if self._snooze_end is not None:
            self._snooze_end.cancel()
            self._snooze_end = None
        until = self.switches.snoozed_until
        if until is not None:
            delay = max(0.0, until - self._clock()) + 0.01
            self._snooze_end = asyncio.get_running_loop().call_later(delay, self._snooze_over)

    def _snooze_over(self) -> None:
        self._snooze_end = None
        self.changed()

    def close(self) -> None:
        for handle in (self._flush, self._snooze_end):
            if handle is not None:
                handle.cancel()
        self._flush = self._snooze_end = None
