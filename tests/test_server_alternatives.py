"""`codegenLsp/inlineCompletion`: the inline request with `numCandidates`, which an editor sends when the person
first cycles (as Copilot fetches alternatives then): the same answer with that many candidates, asked afresh,
the settings untouched; anything but an integer 1-8 is refused as invalid params. Over stdio, the real worker."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.lsp_client import (
    SAMPLE,
    SAMPLE_POSITION,
    debug_state,
    inline,
    open_document,
    start_client,
    stop_client,
    tiny_settings,
    wait_engine,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

METHOD = "codegenLsp/inlineCompletion"
URI = "file:///tmp/alternatives.py"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def client(tiny_model_dir):
    client = await start_client(tiny_settings(tiny_model_dir, maxNewTokens=6))
    open_document(client, URI, SAMPLE)
    await wait_engine(client)
    yield client
    await stop_client(client)


def _params(**extra: Any) -> dict[str, Any]:
    line, character = SAMPLE_POSITION
    return {
        "textDocument": {"uri": URI},
        "position": {"line": line, "character": character},
        "context": {"triggerKind": 1},
    } | extra


def _texts(result: Any) -> list[str]:
    items = result.items if hasattr(result, "items") else result["items"]
    return [item.insertText if hasattr(item, "insertText") else item.insert_text for item in items]


async def test_alternatives_come_with_the_shown_one_first(client) -> None:
    line, character = SAMPLE_POSITION
    shown = _texts(await inline(client, URI, line, character))
    assert len(shown) == 1
    more = _texts(await client.protocol.send_request_async(METHOD, _params(numCandidates=3)))
    assert more[0] == shown[0], "the greedy candidate (the one shown) comes first"
    assert 2 <= len(more) <= 3 and len(set(more)) == len(more), more
    assert (await debug_state(client))["settings"]["numCandidates"] == 1, "one request's count, not a setting"


@pytest.mark.parametrize("count", [0, 9, "3", True, None, 2.5])
async def test_a_bad_count_is_invalid_params(client, count) -> None:
    params = _params(numCandidates=count) if count is not None else _params()
    with pytest.raises(JsonRpcException) as raised:
        await client.protocol.send_request_async(METHOD, params)
    assert raised.value.code == types.ErrorCodes.InvalidParams


async def test_params_of_the_wrong_shape_are_invalid_params(client) -> None:
    params = _params(numCandidates=2)
    del params["textDocument"]
    with pytest.raises(JsonRpcException) as raised:
        await client.protocol.send_request_async(METHOD, params)
    assert raised.value.code == types.ErrorCodes.InvalidParams
