"""Work done progress the server begins itself (the model loading), over pygls' public `work_done_progress`.

pygls sends begin/report/end at once; the spec forbids sending them before the client has answered
`window/workDoneProgress/create`, and loading reports arrive from the worker before it does. So they wait here
(only the begin, the latest report and the end: nothing piles up) until the token exists.
"""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

__all__ = ["ClientProgress"]

log = logging.getLogger("codegen_lsp.server")


class ClientProgress:
    """One server-initiated work done progress: begun at once, reported, ended once (see the module docstring)."""

    def __init__(self, ls: LanguageServer, token: str, title: str, message: str) -> None:
        self._progress = ls.work_done_progress
        self.token = token
        self._state = "creating"  # creating | open | failed
        self._queue: list[Any] = [types.WorkDoneProgressBegin(title=title, message=message, percentage=0)]
        self._percentage = 0
        self.ended = False
        created = ls.protocol.send_request(
            types.WINDOW_WORK_DONE_PROGRESS_CREATE, types.WorkDoneProgressCreateParams(token=token)
        )
        created.add_done_callback(self._created)

    def _created(self, future) -> None:
        if future.cancelled() or future.exception() is not None:
            self._state = "failed"
            log.debug("the client refused progress token %s", self.token)
            return
        self._state = "open"
        queue, self._queue = self._queue, []
        for value in queue:
            self._send(value)

    def report(self, message: str, fraction: float | None) -> None:
        if self.ended:
            return
        if fraction is not None:
            self._percentage = max(self._percentage, min(100, int(fraction * 100)))
        value = types.WorkDoneProgressReport(message=message, percentage=self._percentage)
        if self._state == "creating":  # keep the begin and only the latest report
            self._queue = [v for v in self._queue if not isinstance(v, types.WorkDoneProgressReport)]
            self._queue.append(value)
        else:
            self._send(value)

    def end(self, message: str) -> None:
        if self.ended:
            return
        self.ended = True
        value = types.WorkDoneProgressEnd(message=message)
        if self._state == "creating":
            self._queue.append(value)
        else:
            self._send(value)

    def _send(self, value: Any) -> None:
        if self._state != "open":
            return
        if isinstance(value, types.WorkDoneProgressBegin):
            self._progress.begin(self.token, value)
        elif isinstance(value, types.WorkDoneProgressReport):
            self._progress.report(self.token, value)
        else:
            self._progress.end(self.token, value)
            self._progress.tokens.pop(self.token, None)  # pygls keeps a future per token begun: drop ours
