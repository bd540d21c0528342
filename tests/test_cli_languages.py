"""`codegen-lsp complete` on Go, JavaScript, C, Java and C++ files: the language comes from the extension
(`--language` overrides it) and the completion is what that language's pipeline makes of the model's text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codegen_lsp.inference.protocol import Candidate, CompletionResult, StopReason, Timings
from codegen_lsp.lsp_server.languages import LANGUAGES, language_for_path
from codegen_lsp.lsp_server.pipeline import finish_items, plan
from codegen_lsp.lsp_server.settings import parse_settings
from tests.samples import BY_EXTENSION, split
from tests.test_cli import run

MAX_NEW_TOKENS = 24


def complete_json(model: Path, path: Path, line: int, character: int, *extra: str) -> dict:
    result = run(
        "complete", "--model", str(model), str(path), "--line", str(line), "--character", str(character),
        "--device", "cpu", "--dtype", "float32", "--max-new-tokens", str(MAX_NEW_TOKENS), "--json", *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def pipeline_of(language_name: str, model: Path, text: str, offset: int, output: dict) -> str:
    """What `language_name`'s pipeline makes of the model's raw text (computed here, without a model)."""
    settings, _ = parse_settings({"model": str(model), "maxNewTokens": MAX_NEW_TOKENS})
    planned = plan(text, offset, settings, invoked=True, language=LANGUAGES[language_name])
    assert planned is not None
    candidate = Candidate(tuple(output["token_ids"]), output["raw"], StopReason(output["stop_reason"]))
    items = finish_items(CompletionResult(1, (candidate,), 1, 0, Timings()), planned.ctx, planned.rule)
    return items[0] if items else ""


@pytest.mark.slow  # a model load per file
@pytest.mark.parametrize("extension", sorted(BY_EXTENSION))
def test_the_extension_picks_the_language(tiny_model_dir: Path, tmp_path: Path, extension: str) -> None:
    text, offset, line, character = split(BY_EXTENSION[extension])
    path = tmp_path / f"sample{extension}"
    path.write_text(text, encoding="utf-8")
    output = complete_json(tiny_model_dir, path, line, character)
    language = language_for_path(path)
    assert language is not None and language.name != "python"
    assert output["raw"] and output["prompt_tokens"] > 0
    assert output["completion"] == pipeline_of(language.name, tiny_model_dir, text, offset, output)


@pytest.mark.slow
def test_language_overrides_the_extension(tiny_model_dir: Path, tmp_path: Path) -> None:
    text, offset, line, character = split(BY_EXTENSION[".go"])
    path = tmp_path / "shapes.txt"  # an extension that says nothing: Python, unless told
    path.write_text(text, encoding="utf-8")
    told = complete_json(tiny_model_dir, path, line, character, "--language", "go")
    assert told["completion"] == pipeline_of("go", tiny_model_dir, text, offset, told)
    default = complete_json(tiny_model_dir, path, line, character)
    assert default["completion"] == pipeline_of("python", tiny_model_dir, text, offset, default)


def test_an_unknown_language_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "x.go"
    path.write_text("package x\n", encoding="utf-8")
    result = run("complete", str(path), "--line", "0", "--character", "0", "--language", "rust")
    assert result.returncode == 2 and "--language" in result.stderr
