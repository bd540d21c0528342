"""`codegen-lsp complete` (and the command line around it) as a subprocess, with the tiny checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.lsp_client import run_cli

SOURCE = 'def greet(name):\n    message = "héllo 😀 " + \n    return message\n'
LINE, CHARACTER = 1, len('    message = "héllo 😀 " + '.encode("utf-16-le")) // 2  # UTF-16 units, like LSP


run = run_cli  # `python -m codegen_lsp.lsp_server ARGS`


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "greet.py"
    path.write_text(SOURCE, encoding="utf-8")
    return path


def complete(model: Path, source: Path, *extra: str, **redirects) -> subprocess.CompletedProcess[str]:
    return run(
        "complete",
        "--model",
        str(model),
        str(source),
        "--line",
        str(LINE),
        "--character",
        str(CHARACTER),
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--max-new-tokens",
        "6",
        *extra,
        **redirects,
    )


def test_json_and_plain_output(tiny_model_dir: Path, source: Path) -> None:
    result = complete(tiny_model_dir, source, "--json")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert set(output) >= {"completion", "raw", "token_ids", "prompt_tokens", "timings"}
    assert output["offset"] == SOURCE.index(" + \n") + 3  # UTF-16 character -> code points (the emoji is 2)
    assert 1 <= len(output["token_ids"]) <= 6 and output["prompt_tokens"] > 0
    assert output["raw"].startswith(output["completion"].rstrip())
    assert output["timings"]["total_ms"] > 0 and "load_ms" in output["timings"]
    plain = complete(tiny_model_dir, source)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == (output["completion"] + "\n" if output["completion"] else "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.py", "--line", "0", "--character", "0"], "no such file"),
        (["{source}", "--line", "9", "--character", "0"], "past the end"),
        (["{source}", "--line", "-1", "--character", "0"], "negative"),
        (["{source}", "--line", "0", "--character", "0", "--temperature", "7"], "temperature"),
        (["{folder}", "--line", "0", "--character", "0"], "folder"),
    ],
)
def test_errors_are_one_line_and_exit_2(source: Path, args: list[str], message: str) -> None:
    args = [a.format(source=source, folder=source.parent) for a in args]
    result = run("complete", "--model", "bundled", *args)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_model_that_cannot_load(source: Path, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    result = run(
        "complete",
        "--model",
        str(tmp_path),
        str(source),
        "--line",
        "0",
        "--character",
        "0",
        "--device",
        "cpu",
    )
    assert result.returncode == 2, result.stderr
    assert str(tmp_path) in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_reader_that_leaves_early_gets_no_traceback(tiny_model_dir: Path, source: Path) -> None:
    """`codegen-lsp complete ... | head -c 10`: the pipe closes before the answer is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        result = complete(tiny_model_dir, source, "--json", stdout=write_end, stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr


def test_version_and_help() -> None:
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("codegen-lsp ")
    bench = run("bench", "server", "--help")
    assert bench.returncode == 0 and "keystroke" in bench.stdout
