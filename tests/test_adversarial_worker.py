"""A worker that stops, stalls, hangs or is fed text no tokenizer takes: every request is still answered, within a
bound, and a worker that stops answering is killed and replaced.

The heartbeat runs fast here (a ping every 0.1 s, a stall after 2 s) so that the tests take seconds; the defaults
are in lsp_server/backends/local.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading

import pytest

from codegen_lsp.inference.protocol import CompletionRequest, ErrorKind, GenerationOptions, ModelSpec, WorkerExited
from codegen_lsp.lsp_server.backends.local import EngineClient, EngineError, RequestCancelledError

PROMPT = "def add(a, b):\n    return a + b\n\n\ndef multiply(a, b):\n"
ANSWERED_AT_ONCE_S = 10.0  # "at once", with room for a loaded machine; a hang is what this catches


def request(request_id: int, document: str = "file:///a.py", prompt: str = PROMPT, max_new_tokens: int = 6):
    return CompletionRequest(request_id, document, prompt, GenerationOptions(max_new_tokens=max_new_tokens))


async def started(folder, **timing) -> EngineClient:
    events: list = []
    engine = EngineClient(
        ModelSpec(model=str(folder), device="cpu", dtype="float32"),
        on_event=events.append,
        restart_delays=(0.1,),
        ping_interval_s=0.1,
        **timing,
    )
    engine.events = events  # type: ignore[attr-defined]
    await engine.start()
    return engine


@pytest.fixture
async def client(tiny_model_dir):
    engine = await started(tiny_model_dir, stall_after_s=2.0)
    await engine.wait_ready(timeout=120)
    yield engine
    await engine.stop()


@contextlib.contextmanager
def stopped(pid: int, resume_after_s: float = 60.0):
    """SIGSTOP the worker; SIGCONT on leaving, or after `resume_after_s` from a watchdog (a test that would hang
    fails instead)."""
    os.kill(pid, signal.SIGSTOP)
    watchdog = threading.Timer(resume_after_s, lambda: _resume(pid))
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()
        _resume(pid)


def _resume(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


async def test_superseded_and_cancelled_requests_are_answered_at_once_by_a_stopped_worker(client) -> None:
    with stopped(client._process.pid):
        older = asyncio.create_task(client.generate(request(1)))
        cancelled = asyncio.create_task(client.generate(request(2, document="file:///b.py")))
        await asyncio.sleep(0.05)
        newer = asyncio.create_task(client.generate(request(3)))  # same document as 1
        client.cancel(2)
        with pytest.raises(RequestCancelledError):
            await asyncio.wait_for(older, ANSWERED_AT_ONCE_S)
        with pytest.raises(RequestCancelledError):
            await asyncio.wait_for(cancelled, ANSWERED_AT_ONCE_S)
    assert (await asyncio.wait_for(newer, 120)).request_id == 3


async def test_a_stopped_worker_is_killed_and_replaced(client) -> None:
    pid = client._process.pid
    with stopped(pid):
        pending = asyncio.create_task(client.generate(request(10)))
        with pytest.raises(EngineError) as info:
            await asyncio.wait_for(pending, 60)
    assert info.value.kind == ErrorKind.WORKER_DIED and "stopped answering" in info.value.message
    assert any(isinstance(e, WorkerExited) and e.restarting for e in client.events)
    result = await asyncio.wait_for(client.generate(request(11)), 120)
    assert result.request_id == 11 and client._process.pid != pid


async def test_a_huge_prompt_to_a_stopped_worker_never_blocks_the_event_loop(client) -> None:
    """A send into a full pipe blocked the loop: nothing else was served, and the heartbeat could not run."""
    huge = "x = 1\n" * 1_000_000  # 6 MB: far more than a pipe holds
    with stopped(client._process.pid, resume_after_s=30.0):
        pending = asyncio.create_task(client.generate(request(20, prompt=huge)))
        ticks = 0
        for _ in range(10):
            await asyncio.sleep(0.01)
            ticks += 1
        with pytest.raises(EngineError) as info:  # the stall was found: the loop kept running
            await asyncio.wait_for(pending, 60)
    assert ticks == 10 and "stopped answering" in info.value.message


async def test_a_lone_surrogate_in_the_prompt_is_completed(client) -> None:
    """JSON can carry "\\ud800"; the tokenizer takes no lone surrogate. It becomes U+FFFD, offsets unchanged."""
    result = await asyncio.wait_for(client.generate(request(30, prompt="s = '\ud800'\n" + PROMPT)), 120)
    reference = await asyncio.wait_for(client.generate(request(31, prompt="s = '\ufffd'\n" + PROMPT)), 120)
    assert result.candidates[0].token_ids == reference.candidates[0].token_ids
    assert result.window_start_char == reference.window_start_char


async def test_a_request_without_progress_times_out_and_the_worker_keeps_loading(tiny_model_dir) -> None:
    """Sent while the worker imports torch (seconds without a word of progress): with a 0.3 s bound, the request
    is answered with TIMEOUT; the worker answers pings meanwhile, is not taken for stuck, and serves once ready."""
    engine = await started(tiny_model_dir, stall_after_s=30.0, request_timeout_s=0.3)
    try:
        with pytest.raises(EngineError) as info:
            await asyncio.wait_for(engine.generate(request(40)), 60)
        assert info.value.kind == ErrorKind.TIMEOUT
        engine.request_timeout_s = 120.0
        await engine.wait_ready(timeout=120)
        assert (await asyncio.wait_for(engine.generate(request(41)), 120)).request_id == 41
        assert not any(isinstance(e, WorkerExited) for e in engine.events)
    finally:
        await engine.stop()
