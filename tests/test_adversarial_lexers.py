"""Pathological input for the lexers: nothing an editor can hold makes them slower than linear.

Each case runs in a child process with a hang guard (minutes) far above what the linear scanner needs (well
under a second) and far below what a quadratic one needs at this size (an hour): the guard catches a hang, it
does not time anything.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from codegen_lsp.inference.protocol import Candidate, CompletionRequest, CompletionResult, StopReason, Timings
from codegen_lsp.lsp_server.backends import BackendState
from codegen_lsp.lsp_server.completer import Completer
from codegen_lsp.lsp_server.documents import Document
from codegen_lsp.lsp_server.settings import parse_settings

HANG_GUARD_S = 120


def run_isolated(code: str) -> str:
    try:
        out = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=HANG_GUARD_S
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"still scanning after {HANG_GUARD_S} s: not linear")
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_nested_javascript_template_openers_scan_in_linear_time():
    """Each `${` used to copy the tuple of open templates: 1 MB of openers was ~10^11 element copies."""
    depth = run_isolated(
        """
        from codegen_lsp.inference.rules.syntax import SYNTAXES, scan, walk
        js = SYNTAXES["javascript"]
        print(len(scan("`${" * 350_000, js).templates))
        events, state = walk("x = `a${ {b: `c${" * 60_000, js)
        assert len(state.templates) == 120_000 and len(events) == 180_000
        """
    )
    assert depth == "350000"


def test_a_megabyte_line_of_openers_after_the_cursor_is_post_processed_in_linear_time():
    """The reported freeze: a 300 KB line of nested openers right of the cursor, met by post-processing's search
    for the first unmatched closer (here 1 MB)."""
    found = run_isolated(
        """
        from codegen_lsp.inference.rules.syntax import SYNTAXES, CODE
        from codegen_lsp.lsp_server.pipeline.lexical import first_unmatched_closer
        suffix = "`${" * 350_000 + "}"
        print(first_unmatched_closer(suffix, SYNTAXES["javascript"], CODE))
        """
    )
    assert found == "None"


class AnsweringBackend:
    """A backend that answers every request at once with one candidate, and notes how far the event loop had
    got when it answered."""

    state = BackendState.READY

    def __init__(self, ticks: list[int]) -> None:
        self.ticks, self.answered_at = ticks, -1

    async def generate(self, request: CompletionRequest) -> CompletionResult:
        self.answered_at = len(self.ticks)
        candidate = Candidate((1, 2), "x);", StopReason.EOS)
        return CompletionResult(request.request_id, (candidate,), 2, 0, Timings())

    async def prefill(self, request):
        return None

    def cancel(self, request_id: int) -> None:
        pass

    async def stop(self) -> None:
        pass


async def test_post_processing_a_megabyte_line_right_of_the_cursor_leaves_the_event_loop_free():
    """The issue's case: while the long line was post-processed, every other request waited (15.5 s). Whatever
    the lexers cost, a step this long runs in a thread: the event loop turns while it does."""
    ticks: list[int] = []

    async def tick() -> None:
        while True:
            ticks.append(1)
            await asyncio.sleep(0)

    backend = AnsweringBackend(ticks)
    completer = Completer(lambda: backend)
    text = "const f = (a) => g(" + "`${" * 350_000 + "\n"
    document = Document("file:///big.js", text, "javascript")
    settings, _ = parse_settings({"debounceMs": 0, "languages": ["javascript"]})
    ticker = asyncio.ensure_future(tick())
    try:
        outcome = await completer.get_completions(
            "file:///big.js", document, 0, 19, encoding="utf-16", settings=settings, invoked=True, kind="inline"
        )
    finally:
        ticker.cancel()
    assert outcome.source == "backend", outcome.detail
    assert len(ticks) > backend.answered_at  # the loop turned after the answer, while post-processing ran
