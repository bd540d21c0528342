"""The worker process and its asyncio client: answers, supersession, cancellation, crashes and load failures."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys

import pytest
import pytest_asyncio

from codegen_lsp.inference.protocol import (
    CompletionRequest,
    ErrorKind,
    GenerationOptions,
    LoadFailed,
    LoadProgress,
    ModelReady,
    ModelSpec,
    WorkerExited,
)
from codegen_lsp.lsp_server.backends.local import EngineClient, EngineError, RequestCancelledError

PROMPT = "def add(a, b):\n    return a + b\n\n\ndef multiply(a, b):\n"
FAST_RESTARTS = (0.1, 0.2, 0.4)

# One event loop for the module's async tests, so that the shared worker's pipes and tasks outlive a test.
on_the_module_loop = pytest.mark.asyncio(loop_scope="module")


def spec_for(folder, **changes) -> ModelSpec:
    return ModelSpec(model=str(folder), device="cpu", dtype="float32", **changes)


async def started_client(model_dir) -> EngineClient:
    events: list = []
    engine = EngineClient(spec_for(model_dir), on_event=events.append, restart_delays=FAST_RESTARTS)
    engine.events = events
    await engine.start()
    await engine.wait_ready(timeout=120)
    return engine


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tiny_model_dir):
    """One worker for the tests that only send requests: starting one costs seconds (torch, the model)."""
    engine = await started_client(tiny_model_dir)
    yield engine
    await engine.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def client(tiny_model_dir):
    """A worker of the test's own, for tests that freeze, kill or reload it."""
    engine = await started_client(tiny_model_dir)
    yield engine
    await engine.stop()


@contextlib.contextmanager
def worker_frozen(client: EngineClient):
    """Stop the worker process (SIGSTOP) while the test sends, so that what it sends is still pending in the worker
    however fast this machine runs the tiny model; it resumes (SIGCONT) on leaving."""
    pid = client._process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


async def until_sent(client: EngineClient, request_id: int) -> None:
    while request_id not in client._pending:
        await asyncio.sleep(0)


def request(request_id: int, document: str = "file:///a.py", prompt: str = PROMPT, max_new_tokens: int = 6):
    return CompletionRequest(request_id, document, prompt, GenerationOptions(max_new_tokens=max_new_tokens))


@on_the_module_loop
async def test_a_request_is_answered_with_the_engines_completion(shared, tiny_loaded):
    from codegen_lsp.inference.worker.engine import Engine

    result = await shared.generate(request(1))
    expected = Engine(tiny_loaded).generate(request(1))
    assert result.candidates[0].token_ids == expected.candidates[0].token_ids
    assert result.request_id == 1 and result.prompt_tokens == expected.prompt_tokens


@on_the_module_loop
async def test_load_progress_and_ready_are_reported(shared):
    assert any(isinstance(e, LoadProgress) for e in shared.events)
    ready = [e for e in shared.events if isinstance(e, ModelReady)]
    assert len(ready) == 1 and ready[0].device == "cpu" and ready[0].dtype == "float32"
    assert shared.state == "ready"


@on_the_module_loop
async def test_the_second_keystroke_reuses_the_cache_in_the_worker(shared):
    await shared.generate(request(1))
    second = await shared.generate(request(2, prompt=PROMPT + "    r"))
    assert second.timings.tokens_reused > 0 and second.timings.tokens_computed <= 2


@on_the_module_loop
async def test_a_newer_request_for_the_same_document_supersedes_the_older(client):
    with worker_frozen(client):
        older = asyncio.create_task(client.generate(request(1, max_new_tokens=200)))
        await until_sent(client, 1)
        newer_task = asyncio.create_task(client.generate(request(2, prompt=PROMPT + "    ")))
        await until_sent(client, 2)
    newer = await newer_task
    with pytest.raises(RequestCancelledError):
        await older
    assert newer.request_id == 2


@on_the_module_loop
async def test_requests_for_other_documents_are_all_answered(shared):
    results = await asyncio.gather(*(shared.generate(request(i, f"file:///{i}.py")) for i in range(4)))
    assert [r.request_id for r in results] == [0, 1, 2, 3]


@on_the_module_loop
async def test_an_explicit_cancel_stops_the_request(client):
    with worker_frozen(client):
        task = asyncio.create_task(client.generate(request(7, max_new_tokens=200)))
        await until_sent(client, 7)
        client.cancel(7)
    with pytest.raises(RequestCancelledError):
        await task
    assert (await client.generate(request(8))).request_id == 8  # still serving


@on_the_module_loop
async def test_cancelling_the_awaiting_task_cancels_the_request_in_the_worker(client):
    with worker_frozen(client):
        task = asyncio.create_task(client.generate(request(9, max_new_tokens=200)))
        await until_sent(client, 9)
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    result = await asyncio.wait_for(client.generate(request(10)), 30)
    assert result.request_id == 10


@on_the_module_loop
async def test_a_bad_request_gets_an_error_and_the_worker_keeps_serving(shared):
    bad = CompletionRequest(11, "file:///a.py", None, GenerationOptions(max_new_tokens=6))  # no prompt text
    with pytest.raises(EngineError) as info:
        await shared.generate(bad)
    assert info.value.kind == ErrorKind.BAD_REQUEST
    assert (await shared.generate(request(12))).request_id == 12


@on_the_module_loop
async def test_a_killed_worker_fails_pending_requests_then_restarts_and_serves(client):
    with worker_frozen(client) as pid:
        pending = asyncio.create_task(client.generate(request(20, max_new_tokens=200)))
        await until_sent(client, 20)
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(EngineError) as info:
        await pending
    assert info.value.kind == ErrorKind.WORKER_DIED and "SIGKILL" in info.value.message
    assert any(isinstance(e, WorkerExited) and e.restarting for e in client.events)
    result = await asyncio.wait_for(client.generate(request(21)), 120)
    assert result.request_id == 21 and client.state == "ready"


@on_the_module_loop
async def test_a_model_that_cannot_load_fails_requests_at_once_with_its_reason(tmp_path):
    events: list = []
    engine = EngineClient(spec_for(tmp_path / "missing-model"), on_event=events.append)
    await engine.start()
    with pytest.raises(EngineError) as info:
        await engine.wait_ready(timeout=120)
    assert info.value.kind == ErrorKind.MODEL_NOT_FOUND and "missing-model" in info.value.message
    assert any(isinstance(e, LoadFailed) for e in events)
    with pytest.raises(EngineError):
        await asyncio.wait_for(engine.generate(request(1)), 5)  # answered at once, never hangs
    await engine.stop()


@on_the_module_loop
async def test_reload_switches_to_another_model(client, hf_tiny, tmp_path):
    from tests.checkpoints import tiny_hf_model, write_checkpoint

    other = write_checkpoint(tmp_path / "other", tiny_hf_model(seed=5), "safetensors")
    before = await client.generate(request(30))
    await client.reload(spec_for(other))
    await client.wait_ready(timeout=120)
    after = await client.generate(request(31))
    assert client.ready_info.resolved == str(other)
    assert after.candidates[0].token_ids != before.candidates[0].token_ids


def test_the_client_never_imports_torch():
    code = (
        "import sys, codegen_lsp.lsp_server.backends.local, codegen_lsp.inference.protocol, "
        "codegen_lsp.inference.rules.stop_rule; "
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
