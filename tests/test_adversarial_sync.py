"""Random edit replays over the real server, the server's text checked against the ground truth after EVERY edit,
in utf-8 and utf-16: inserts, deletes and replacements anywhere (inside line breaks' neighbourhoods, at the ends),
several changes per notification, ranges given backwards or past the end, whole-text replacements, characters
outside the BMP, every kind of line break, and (utf-16, as a JavaScript string may hold) lone surrogates."""

from __future__ import annotations

import random
import re

import pytest

from tests.lsp_client import RawServer

EDITS = 300
_BREAK = re.compile(r"\r\n|\r|\n")
PIECES = ["a", "bc", " ", "\t", "(", ")", "\n", "\r\n", "\r", "é", "€", "😀", "𝔘", "\f", "\u2028", '"', "\x00",
          "def f():\n    return 1\n"]  # fmt: skip


def units(text: str, encoding: str) -> int:
    if encoding == "utf-8":
        return len(text.encode("utf-8", "surrogatepass"))
    return sum(2 if ord(c) > 0xFFFF else 1 for c in text)


def position(text: str, offset: int, encoding: str) -> dict:
    starts = [0] + [m.end() for m in _BREAK.finditer(text)]
    line = max(i for i, s in enumerate(starts) if s <= offset)
    return {"line": line, "character": units(text[starts[line] : offset], encoding)}


def boundary(text: str, offset: int) -> int:
    return offset - 1 if text[offset - 1 : offset + 1] == "\r\n" else offset  # not inside a "\r\n"


def random_change(rng: random.Random, truth: str, encoding: str) -> tuple[dict, str]:
    """One content change and the text it makes."""
    pieces = PIECES + (["\ud800", "\udfff"] if encoding == "utf-16" else [])
    new = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 3)))
    if rng.random() < 0.03:
        return {"text": new}, new
    a, b = sorted(boundary(truth, rng.randint(0, len(truth))) for _ in range(2))
    start, end = position(truth, a, encoding), position(truth, b, encoding)
    if b == len(truth) and rng.random() < 0.2:
        end = {"line": end["line"] + 3, "character": 999}  # past the end means the end
    if rng.random() < 0.1:
        start, end = end, start  # backwards: the server takes the span it names
    return {"range": {"start": start, "end": end}, "text": new}, truth[:a] + new + truth[b:]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_random_edits_match_the_ground_truth_after_every_edit(encoding: str) -> None:
    server = RawServer()
    offered = ["utf-8"] if encoding == "utf-8" else []
    response = server.request(
        "initialize", {"processId": None, "capabilities": {"general": {"positionEncodings": offered}}}
    )
    assert response["result"]["capabilities"]["positionEncoding"] == encoding
    rng = random.Random(10)
    uri = f"file:///tmp/codegen-lsp-tests/replay-{encoding}.py"
    truth = "import os\r\n\ndef main():\r    pass\n"
    server.notify(
        "textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": truth}}
    )
    version, edits = 1, 0
    while edits < EDITS:
        changes = []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            change, truth = random_change(rng, truth, encoding)
            changes.append(change)
            edits += 1
        version += 1
        server.notify(
            "textDocument/didChange", {"textDocument": {"uri": uri, "version": version}, "contentChanges": changes}
        )
        text = server.request(
            "workspace/executeCommand", {"command": "codegenLsp.debugDocumentText", "arguments": [uri]}
        )["result"]
        assert text == truth, f"after edit {edits}: {changes!r}"
    assert server.close() == 0
