"""The worker's scheduling: the document being typed in never waits behind another; idle prefill yields to all."""

from __future__ import annotations

import asyncio

import pytest

from codegen_lsp.inference.protocol import (
    CompletionRequest,
    CompletionResult,
    GenerationOptions,
    ModelSpec,
    PrefillRequest,
    RequestCancelled,
)
from codegen_lsp.inference.worker.main import RequestQueue
from codegen_lsp.lsp_server.backends.local import EngineClient
from tests.test_worker import until_sent, worker_frozen

PROMPT = "def add(a, b):\n    return a + b\n\n\ndef multiply(a, b):\n"


class Said:
    """Stands in for the worker's pipe: what the queue answers by itself (cancellations)."""

    def __init__(self) -> None:
        self.messages: list[object] = []

    def send(self, message: object) -> None:
        self.messages.append(message)


def request(request_id: int, document: str, max_new_tokens: int = 8) -> CompletionRequest:
    return CompletionRequest(request_id, document, PROMPT, GenerationOptions(max_new_tokens=max_new_tokens))


def queue() -> tuple[RequestQueue, Said]:
    said = Said()
    return RequestQueue(said), said  # type: ignore[arg-type]


def test_the_newest_request_runs_first() -> None:
    q, _ = queue()
    q.add(request(1, "a"))
    q.add(request(2, "b"))
    assert q.next().request.request_id == 2
    q.finish(q._running, stopped=False)
    assert q.next().request.request_id == 1


def test_newest_is_the_order_the_server_numbered_not_the_order_of_arrival() -> None:
    """The server numbers requests as the keystrokes come; a large document's request is planned in a thread and
    can reach the worker after a later one for a small file (seen in bench server's five-file replay)."""
    q, _ = queue()
    q.add(request(5, "typed-in"))
    running = q.next()
    q.add(request(4, "large"))  # asked before the running one: it waits, nothing is paused
    q.add(request(3, "other"))
    assert not running.stop.is_set()
    q.finish(running, stopped=False)
    assert q.next().request.request_id == 4  # then the newest of those that wait
    q.finish(q._running, stopped=False)
    assert q.next().request.request_id == 3


def test_a_request_for_another_document_pauses_the_running_one_which_resumes_after_it() -> None:
    q, said = queue()
    q.add(request(1, "a"))
    running = q.next()
    q.add(request(2, "b"))
    assert running.stop.is_set() and running.preempted
    assert q.finish(running, stopped=True)  # paused, not answered
    newest = q.next()
    assert newest.request.request_id == 2
    q.finish(newest, stopped=False)
    resumed = q.next()
    assert resumed.request is running.request and not resumed.stop.is_set()
    assert said.messages == []


def test_only_a_request_for_another_document_stops_a_prefill_chunk_between_blocks() -> None:
    q, _ = queue()
    q.add(request(1, "a"))
    running = q.next()
    assert not running.paused()
    q.add(request(2, "a"))  # the same document: the newcomer needs the chunk, which ends first
    assert running.stop.is_set() and not running.paused()
    q.finish(running, stopped=True)
    running = q.next()
    q.add(request(3, "b"))  # another document: the chunk is dropped at the next block
    assert running.paused()


def test_a_request_that_finished_before_the_pause_reached_it_is_answered() -> None:
    q, _ = queue()
    q.add(request(1, "a"))
    running = q.next()
    q.add(request(2, "b"))
    assert not q.finish(running, stopped=False)  # its result was ready: it is sent, not run again
    assert q.next().request.request_id == 2


def test_a_newer_request_for_the_same_document_ends_the_running_one() -> None:
    q, _ = queue()
    q.add(request(1, "a"))
    running = q.next()
    q.add(request(2, "a"))
    assert running.stop.is_set() and not running.preempted
    assert not q.finish(running, stopped=True)  # answered RequestCancelled by the serving loop


def test_a_paused_request_cancelled_by_the_client_is_not_resumed() -> None:
    q, _ = queue()
    q.add(request(1, "a"))
    running = q.next()
    q.add(request(2, "b"))
    q.cancel(1)
    assert not q.finish(running, stopped=True)


def test_queued_requests_of_a_document_are_superseded_and_answered_at_once() -> None:
    q, said = queue()
    q.add(request(1, "a"))
    q.add(request(2, "b"))
    q.add(request(3, "a"))
    assert [m.request_id for m in said.messages if isinstance(m, RequestCancelled)] == [1]
    assert q.next().request.request_id == 3


def test_idle_prefill_runs_only_when_nothing_waits_and_yields_to_any_request() -> None:
    q, said = queue()
    q.add(PrefillRequest(1, "opened", PROMPT))
    q.add(request(2, "a"))
    assert q.next().request.request_id == 2
    q.finish(q._running, stopped=False)
    prefill = q.next()
    assert prefill.idle
    q.add(request(3, "b"))
    assert prefill.stop.is_set() and prefill.preempted
    assert q.finish(prefill, stopped=True)
    assert q.next().request.request_id == 3
    q.finish(q._running, stopped=False)
    resumed = q.next()
    assert resumed.request.request_id == 1  # the prefill resumes when the worker is free again
    q.add(request(4, "opened"))  # the person types in the opened document: the prefill has done its part
    assert resumed.stop.is_set() and not q.finish(resumed, stopped=True)
    assert q.next().request.request_id == 4 and said.messages == []


async def test_a_keystroke_in_one_document_is_answered_before_long_work_in_another(tiny_model_dir) -> None:
    order: list[int] = []
    engine = EngineClient(ModelSpec(model=str(tiny_model_dir), device="cpu", dtype="float32"))
    await engine.start()
    await engine.wait_ready(timeout=120)
    try:

        async def ask(r: CompletionRequest) -> CompletionResult:
            result = await engine.generate(r)
            order.append(r.request_id)
            return result

        with worker_frozen(engine):  # both wait in the worker, however fast this machine runs the tiny model
            long = asyncio.create_task(ask(request(1, "file:///long.py", max_new_tokens=200)))
            await until_sent(engine, 1)
            short_task = asyncio.create_task(ask(request(2, "file:///typed.py", max_new_tokens=4)))
            await until_sent(engine, 2)
            await asyncio.sleep(0.3)  # through the pipe
        short = await asyncio.wait_for(short_task, 60)
        assert short.request_id == 2
        finished = await asyncio.wait_for(long, 120)
        assert finished.request_id == 1 and order == [2, 1]  # both answered, the keystroke first
    finally:
        await engine.stop()


@pytest.mark.parametrize("document", ["file:///opened.py"])
async def test_a_prefill_is_superseded_by_the_first_keystroke_in_its_document(tiny_model_dir, document) -> None:
    engine = EngineClient(ModelSpec(model=str(tiny_model_dir), device="cpu", dtype="float32"))
    await engine.start()
    await engine.wait_ready(timeout=120)
    try:
        text = PROMPT * 6
        prefill = asyncio.create_task(engine.prefill(PrefillRequest(1, document, text, context_tokens=200)))
        await asyncio.wait({prefill}, timeout=10)
        options = GenerationOptions(max_new_tokens=4)
        keystroke = await engine.generate(CompletionRequest(2, document, text[:-1], options))
        assert keystroke.timings.tokens_reused > 0  # what the prefill computed is reused
    finally:
        await engine.stop()
