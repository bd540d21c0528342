"""The server over stdio completes Go and JavaScript documents (and the other languages of a `-multi` model),
as `codegen-lsp complete` does for the same file, follows the `languages` setting, and survives a
catastrophic `truncateBeforePattern`."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from lsprotocol import types

from codegen_lsp.lsp_server.languages import LANGUAGES
from tests.lsp_client import (
    configure,
    debug_state,
    inline,
    open_document,
    start_client,
    stop_client,
    tiny_settings,
    wait_engine,
)
from tests.samples import BY_EXTENSION, split
from tests.test_cli_languages import complete_json, pipeline_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

_uris = iter(range(10**6))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(tiny_model_dir):
    client = await start_client(tiny_settings(tiny_model_dir, maxNewTokens=24))
    await wait_engine(client)
    yield client
    await stop_client(client)


def new_document(client, text: str, language_id: str, extension: str) -> str:
    uri = f"file:///tmp/codegen-lsp-tests/languages{next(_uris)}{extension}"
    open_document(client, uri, text, language_id)
    return uri


@pytest.mark.parametrize(("language_id", "extension"), [("go", ".go"), ("javascript", ".js")])
async def test_go_and_javascript_documents_are_completed_as_the_cli_completes_them(
    client, tiny_model_dir, tmp_path, language_id: str, extension: str
) -> None:
    text, offset, line, character = split(BY_EXTENSION[extension])
    uri = new_document(client, text, language_id, extension)
    result = await inline(client, uri, line, character)
    path = tmp_path / f"sample{extension}"
    path.write_text(text, encoding="utf-8")
    expected = complete_json(tiny_model_dir, path, line, character)
    assert expected["completion"] == pipeline_of(LANGUAGES[language_id].name, tiny_model_dir, text, offset, expected)
    assert [item.insert_text for item in result.items] == ([expected["completion"]] if expected["completion"] else [])


@pytest.mark.parametrize(
    ("language_id", "extension"), [("c", ".c"), ("cpp", ".cpp"), ("java", ".java"), ("javascriptreact", ".jsx")]
)
async def test_the_other_languages_reach_the_model(client, language_id: str, extension: str) -> None:
    sample = BY_EXTENSION.get(extension, BY_EXTENSION[".js"])
    text, _, line, character = split(sample)
    uri = new_document(client, text, language_id, extension)
    asked = (await debug_state(client))["stats"].get("engine_requests", 0)
    await inline(client, uri, line, character)
    assert (await debug_state(client))["stats"].get("engine_requests", 0) == asked + 1


async def test_the_languages_setting_decides_which_documents_are_completed(client) -> None:
    text, _, line, character = split(BY_EXTENSION[".go"])
    uri = new_document(client, text, "go", ".go")
    try:
        await configure(client, languages=["python"])
        asked = (await debug_state(client))["stats"].get("engine_requests", 0)
        assert not (await inline(client, uri, line, character)).items
        assert (await debug_state(client))["stats"].get("engine_requests", 0) == asked  # the model was not asked
        rust = new_document(client, "fn main() {\n    \n}\n", "rust", ".rs")
        await configure(client, languages="auto")
        assert not (await inline(client, rust, 1, 4)).items
        asked = (await debug_state(client))["stats"].get("engine_requests", 0)
        await inline(client, uri, line, character)
        assert (await debug_state(client))["stats"].get("engine_requests", 0) == asked + 1
    finally:
        await configure(client, languages="auto")


async def test_a_catastrophic_pattern_is_refused_with_a_message_and_the_server_keeps_answering(client) -> None:
    before = len(client.messages)
    await configure(client, truncateBeforePattern=["(a+)+b"])
    for _ in range(50):
        if len(client.messages) > before:
            break
        await asyncio.sleep(0.1)
    (message,) = client.messages[before:]
    assert message.type == types.MessageType.Warning
    assert "(a+)+b" in message.message and "too slow" in message.message
    line_of_as = "x = '" + "a" * 100_000
    uri = new_document(client, f"def f():\n    {line_of_as}\n    return ", "python", ".py")
    result = await asyncio.wait_for(inline(client, uri, 2, 11), 60)
    assert result is not None
    assert (await asyncio.wait_for(debug_state(client), 10))["engine"] == "ready"
