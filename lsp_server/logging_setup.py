"""Logs go to stderr or to `window/logMessage`, one path at a time; never to stdout (the protocol).

Our loggers live under "codegen_lsp" (server, client, worker). Editors show the server's stderr and its
`window/logMessage` in the same place (VS Code's output channel, Neovim's lsp.log), so a record sent both ways
showed twice. While a session is initialized over stdio, our records go to the client only; before that, after
it, when the client is on TCP (stderr is then a terminal, not the client's), and for the libraries' own
warnings, stderr. pygls logs every message it sends at INFO ("Sending data: ..."), so its loggers stay at
WARNING: forwarding those to the client would loop, and at 10 MB documents they would drown stderr.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable

__all__ = ["CLIENT_HANDLER", "LEVELS", "ClientLogHandler", "setup_logging", "set_level"]

ROOT = "codegen_lsp"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_FORMAT = "%(asctime)s codegen-lsp %(levelname)s %(name)s: %(message)s"


class ClientLogHandler(logging.Handler):
    """Forwards records to the client as window/logMessage, through `send(level, text)` on the event loop.

    `send` is set once the session is initialized; records from other threads are handed to the loop. A record
    logged while sending one is dropped (no recursion through the transport's own logging).
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        self._send: Callable[[int, str], None] | None = None
        self._call_soon: Callable[..., object] | None = None
        self._loop_thread: int | None = None
        self._busy = threading.local()
        self._ready: Callable[[], bool] = lambda: True
        self._instead_of_stderr = False

    def connect(
        self,
        send: Callable[[int, str], None],
        call_soon_threadsafe: Callable[..., object],
        ready: Callable[[], bool] = lambda: True,
        instead_of_stderr: bool = False,
    ) -> None:
        """`ready()`: the client takes log messages now; `instead_of_stderr`: it also reads our stderr."""
        self._send = send
        self._call_soon = call_soon_threadsafe
        self._loop_thread = threading.get_ident()
        self._ready = ready
        self._instead_of_stderr = instead_of_stderr

    def disconnect(self) -> None:
        self._send = None

    def replaces_stderr(self, record: logging.LogRecord) -> bool:
        """This record goes to the client, which shows our stderr too: stderr leaves it out."""
        if not self._instead_of_stderr or self._send is None or getattr(self._busy, "active", False):
            return False
        if not (record.name == ROOT or record.name.startswith(ROOT + ".")):
            return False
        try:
            return bool(self._ready())
        except Exception:  # noqa: BLE001 - logging must never raise
            return False

    def emit(self, record: logging.LogRecord) -> None:
        send = self._send
        if send is None or getattr(self._busy, "active", False):
            return
        try:
            text = self.format(record)
        except Exception:  # noqa: BLE001 - logging must never raise
            return
        if threading.get_ident() == self._loop_thread:
            self._deliver(send, record.levelno, text)
        elif self._call_soon is not None:
            try:
                self._call_soon(self._deliver, send, record.levelno, text)
            except RuntimeError:
                pass  # the loop is closed

    def _deliver(self, send: Callable[[int, str], None], level: int, text: str) -> None:
        self._busy.active = True
        try:
            send(level, text)
        except Exception:  # noqa: BLE001
            pass
        finally:
            self._busy.active = False


CLIENT_HANDLER = ClientLogHandler()


def setup_logging(level: str = "info") -> None:
    """stderr for everything of ours (and warnings of the libraries), the client handler for ours."""
    root = logging.getLogger()
    if not any(getattr(h, "_codegen_lsp", False) for h in root.handlers):
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setFormatter(logging.Formatter(_FORMAT))
        stderr.addFilter(lambda record: not CLIENT_HANDLER.replaces_stderr(record))
        stderr._codegen_lsp = True  # type: ignore[attr-defined]
        root.addHandler(stderr)
    root.setLevel(logging.WARNING)
    ours = logging.getLogger(ROOT)
    if CLIENT_HANDLER not in ours.handlers:
        ours.addHandler(CLIENT_HANDLER)
    for name in ("pygls", "lsprotocol"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # pygls logs a whole traceback at ERROR for every message whose params do not fit the method's types;
    # rpc.py answers those (-32602) and logs one line that says which field is wrong.
    rpc_logger = logging.getLogger("pygls.protocol.json_rpc")
    if _not_deserialization_noise not in rpc_logger.filters:
        rpc_logger.addFilter(_not_deserialization_noise)
    set_level(level)


def _not_deserialization_noise(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Unable to deserialize message")


def set_level(level: str) -> None:
    logging.getLogger(ROOT).setLevel(LEVELS.get(level, logging.INFO))
