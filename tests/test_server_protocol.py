"""The server over stdio with a real client (pytest-lsp) and the real worker running the tiny checkpoint."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import client_capabilities

from tests.lsp_client import (
    REPO,
    SAMPLE,
    SAMPLE_POSITION,
    configure,
    debug_state,
    document_text,
    inline,
    open_document,
    server_env,
    start_client,
    stop_client,
    tiny_settings,
    wait_engine,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(tiny_model_dir):
    client = await start_client(tiny_settings(tiny_model_dir))
    await wait_engine(client)
    yield client
    await stop_client(client)


_uris = iter(range(10**6))


def new_document(client, text: str = SAMPLE, language_id: str = "python") -> str:
    uri = f"file:///tmp/codegen-lsp-tests/doc{next(_uris)}.py"
    open_document(client, uri, text, language_id)
    return uri


async def cli_complete(tmp_path: Path, model_dir: Path, text: str, line: int, character: int, *extra: str) -> dict:
    source = tmp_path / "document.py"
    source.write_text(text, encoding="utf-8", newline="")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "codegen_lsp.lsp_server",
        "complete",
        "--model",
        str(model_dir),
        str(source),
        "--line",
        str(line),
        "--character",
        str(character),
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--max-new-tokens",
        "8",
        "--json",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=server_env(),
        cwd=REPO,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return json.loads(out)


async def test_capabilities(client) -> None:
    caps = client.initialize_result.capabilities
    assert caps.inline_completion_provider is not None
    assert caps.completion_provider is None  # only for clients without inline completion (see below)
    assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental
    assert caps.text_document_sync.open_close
    assert caps.position_encoding == types.PositionEncodingKind.Utf16  # the client offered none
    assert client.initialize_result.server_info.name == "codegen-lsp"


async def test_server_process_never_imports_torch(client) -> None:
    state = await debug_state(client)
    assert state["engine"] == "ready"
    assert state["modules"] == []  # neither torch nor transformers (nor numpy) in the server process


async def test_every_module_is_loaded_once(client) -> None:
    """One import style: no file is loaded under two names (two `Settings` classes would never compare equal)."""
    state = await debug_state(client)
    assert state["duplicate_modules"] == []


async def test_loading_progress_was_reported(client) -> None:
    ((token, reports),) = client.progress_reports.items()
    kinds = [r.kind for r in reports]
    assert kinds[0] == "begin" and kinds[-1] == "end" and set(kinds[1:-1]) <= {"report"}
    percentages = [r.percentage for r in reports if getattr(r, "percentage", None) is not None]
    assert percentages == sorted(percentages) and percentages[-1] == 100
    assert "ready" in reports[-1].message


async def test_inline_equals_cli(client, tiny_model_dir, tmp_path) -> None:
    uri = new_document(client)
    result = await inline(client, uri, *SAMPLE_POSITION, invoked=False)
    expected = await cli_complete(tmp_path, tiny_model_dir, SAMPLE, *SAMPLE_POSITION)
    assert expected["completion"], "the tiny model should complete here"
    assert [item.insert_text for item in result.items] == [expected["completion"]]
    at = types.Position(*SAMPLE_POSITION)
    assert result.items[0].range == types.Range(start=at, end=at)
    assert expected["raw"].startswith(expected["completion"].rstrip()) and expected["prompt_tokens"] > 0
    assert len(expected["token_ids"]) <= 8 and set(expected["timings"]) >= {"prefill_ms", "decode_ms"}


async def test_typed_through_answers_without_the_worker(client) -> None:
    uri = new_document(client)
    line, character = SAMPLE_POSITION
    first = (await inline(client, uri, line, character)).items[0].insert_text
    before = (await debug_state(client))["stats"]
    typed = first[:2]
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=types.Position(line, character), end=types.Position(line, character)),
                    text=typed,
                )
            ],
        )
    )
    result = await inline(client, uri, line, character + len(typed))
    assert [item.insert_text for item in result.items] == [first[2:]]
    after = (await debug_state(client))["stats"]
    assert after.get("typed_through", 0) == before.get("typed_through", 0) + 1
    assert after.get("engine_requests") == before.get("engine_requests")


async def test_newer_request_supersedes_older(client) -> None:
    uri = new_document(client)
    await configure(client, debounceMs=1000)  # the older is still waiting when the newer comes, even on a slow CI
    try:
        older = asyncio.ensure_future(inline(client, uri, *SAMPLE_POSITION))
        await asyncio.sleep(0.05)
        newer = await inline(client, uri, *SAMPLE_POSITION)
        assert not (await older).items  # answered at once, with nothing
        assert len(newer.items) == 1
    finally:
        await configure(client, debounceMs=0)


async def test_cancel_request(client) -> None:
    uri = new_document(client)
    await configure(client, debounceMs=3000)
    try:
        pending = asyncio.ensure_future(inline(client, uri, *SAMPLE_POSITION, msg_id="cancel-me"))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="cancel-me"))
        with pytest.raises(JsonRpcRequestCancelled):
            await pending
        assert time.monotonic() - started < 2.0
    finally:
        await configure(client, debounceMs=0)
    assert (await inline(client, uri, *SAMPLE_POSITION)).items  # still serving


async def test_non_python_unknown_uri_and_positions(client) -> None:
    rust = new_document(client, "fn main() {\n    let x = \n}\n", "rust")
    assert not (await inline(client, rust, 1, 12)).items
    assert not (await inline(client, "file:///never/opened.py", 0, 0)).items
    uri = new_document(client)
    assert not (await inline(client, uri, 999, 0)).items  # a line past the end
    line, character = SAMPLE_POSITION
    past = await inline(client, uri, line, character + 50)  # past the line's end: the end, as the spec says
    assert past.items and past.items[0].range.start == types.Position(line, character)


async def test_automatic_trigger_waits_before_a_word(client) -> None:
    uri = new_document(client, "value = compute(\nresult = other\n")
    asked = (await debug_state(client))["stats"].get("engine_requests", 0)
    assert not (await inline(client, uri, 1, 9, invoked=False)).items  # before "other": not automatically
    assert (await debug_state(client))["stats"].get("engine_requests", 0) == asked
    await inline(client, uri, 1, 9, invoked=True)  # asked for: the model is asked
    assert (await debug_state(client))["stats"]["engine_requests"] == asked + 1


async def test_ten_megabyte_document(client) -> None:
    big = SAMPLE * (10_000_000 // len(SAMPLE) + 1)
    uri = new_document(client, big)
    lines = big.count("\n")
    result = await asyncio.wait_for(inline(client, uri, lines - 1, SAMPLE_POSITION[1]), 300)  # answered, never hung
    at = types.Position(lines - 1, SAMPLE_POSITION[1])  # the end of the last copy's "    total = "
    assert result.items and all(item.insert_text and item.range.start == at for item in result.items)
    assert len(await document_text(client, uri)) == len(big)


async def test_multiple_candidates(client) -> None:
    uri = new_document(client)
    greedy = (await inline(client, uri, *SAMPLE_POSITION)).items[0].insert_text
    await configure(client, numCandidates=4, seed=3)
    try:
        items = [item.insert_text for item in (await inline(client, uri, *SAMPLE_POSITION)).items]
    finally:
        await configure(client, numCandidates=1, seed=None)
    assert items[0] == greedy  # the first candidate stays greedy; the others are sampled
    assert 2 <= len(items) <= 4 and len(set(items)) == len(items)


# -- the completion fallback, with a real client's capabilities ---------------------------------------------


async def test_completion_fallback_for_eglot(client, tiny_model_dir) -> None:
    eglot = client_capabilities("emacs")  # eglot: no inline completion, offers utf-32, utf-8, utf-16
    fallback = await start_client(tiny_settings(tiny_model_dir), eglot)
    try:
        caps = fallback.initialize_result.capabilities
        assert caps.position_encoding == types.PositionEncodingKind.Utf8
        assert caps.completion_provider is not None and "." in caps.completion_provider.trigger_characters
        assert caps.inline_completion_provider is not None
        text = SAMPLE.replace("    total = \n", "    total = lé\n")
        uri = new_document(fallback, text)
        line, character = 13, len("    total = lé".encode())  # utf-8 units
        await wait_engine(fallback)
        result = await fallback.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line, character),
                context=types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked),
            )
        )
        # The same completion as the inline request (itself the CLI's) at the same place, word included.
        expected = (await inline(client, new_document(client, text), 13, len("    total = lé"))).items[0]
        assert result.is_incomplete
        (item,) = result.items
        assert item.text_edit.new_text == "lé" + expected.insert_text
        assert item.text_edit.range == types.Range(
            start=types.Position(line, character - 3), end=types.Position(line, character)
        )
        assert item.label.startswith("lé") and item.filter_text.startswith("lé")
        assert item.insert_text_format == types.InsertTextFormat.PlainText
        assert item.sort_text == "0000" and item.kind == types.CompletionItemKind.Text
    finally:
        await stop_client(fallback)


async def test_inline_capable_clients_get_no_completion_items(client) -> None:
    uri = new_document(client)
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(*SAMPLE_POSITION),
        )
    )
    assert not result.items


async def test_no_automatic_suggestion_right_after_a_deletion(client) -> None:
    """Backspace does not pop a suggestion up (a complaint about peers); typing and explicit invokes do."""
    uri = new_document(client)
    line, character = SAMPLE_POSITION
    assert (await inline(client, uri, line, character, invoked=False)).items

    def edit(version: int, start: int, end: int, text: str) -> None:
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=types.Position(line, start), end=types.Position(line, end)),
                        text=text,
                    )
                ],
            )
        )

    edit(2, character - 1, character, "")  # backspace
    assert not (await inline(client, uri, line, character - 1, invoked=False)).items
    assert (await inline(client, uri, line, character - 1, invoked=True)).items
    edit(3, character - 1, character - 1, SAMPLE.splitlines()[line][character - 1])  # typed back
    assert (await inline(client, uri, line, character, invoked=False)).items
