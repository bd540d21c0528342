"""Snippets of other files end to end: `codegen-lsp complete --workspace DIR` and the server (its workspace folder
from `initialize`) send the same prompt, and the local and the remote backend are given that same prompt (the
snippets are part of the text prompt the pipeline builds, whichever backend answers)."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lsprotocol import types

from codegen_lsp.lsp_server.backends.openai import TOKENIZER_PROBE, load_model_files
from tests import hostile_openai_server as hostile
from tests.lsp_client import REPO, SERVER_COMMAND, capabilities, debug_state, inline, open_document, server_env

FILES = {
    "shop/__init__.py": "",
    "shop/prices.py": (
        "TAX_RATE = 0.2\n\n\ndef discount(total, percent):\n    return total * (1 - percent / 100)\n\n\n"
        "def with_tax(amount):\n    return amount * (1 + TAX_RATE)\n"
    ),
    "shop/cart.py": (
        "from shop.prices import discount, with_tax\n\n\ndef checkout(items):\n    total = sum(items)\n    return "
    ),
    "build/cart_copy.py": "def checkout(items):\n    total = sum(items)\n    return with_tax(total)\n",
    ".gitignore": "build/\n",
}  # fmt: skip
SETTINGS = {"model": "bundled", "device": "cpu", "dtype": "float32", "maxNewTokens": 8, "debounceMs": 0,
            "contextSnippetTokens": 128}  # fmt: skip
LINE, CHARACTER = 5, 11  # the end of "    return "


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shop-workspace")
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root.resolve()


def cli(workspace: Path, settings: dict, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "codegen_lsp.lsp_server", "complete", str(workspace / "shop" / "cart.py")]
    command += ["--line", str(LINE), "--character", str(CHARACTER), "--settings", json.dumps(settings), *extra]
    return subprocess.run(command, capture_output=True, text=True, env=server_env(), timeout=300)


async def server_prompt(workspace: Path, settings: dict) -> str:
    """The prompt the server sent for the same cursor, once its index is built (the first requests may go
    without snippets: the index is built in the background)."""
    from pytest_lsp import make_test_lsp_client

    client = make_test_lsp_client()
    await client.start_io(*SERVER_COMMAND, env=server_env())
    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(),
            initialization_options=settings,
            workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="shop")],
        )
    )
    try:
        uri = (workspace / "shop" / "cart.py").as_uri()
        open_document(client, uri, FILES["shop/cart.py"])
        deadline = time.monotonic() + 600  # a loaded 2-core machine: loading the model took minutes
        while time.monotonic() < deadline:
            await inline(client, uri, LINE, CHARACTER)
            prompts = (await debug_state(client))["snippet_prompts"]
            if uri in prompts:
                return prompts[uri]
            await asyncio.sleep(0.5)
        raise AssertionError("the server never sent a prompt with snippets")
    finally:
        await asyncio.wait_for(client.shutdown_session(), 120)
        await client.stop()


@pytest.fixture(scope="module")
def cli_prompt(workspace: Path) -> str:
    done = cli(workspace, SETTINGS, "--workspace", str(workspace), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["prompt"]


def test_the_cli_prompt_ends_with_the_imported_declarations_before_the_file_and_skips_ignored_files(
    cli_prompt: str,
) -> None:
    imported = "# Path: shop/prices.py\n# def discount(total, percent):\n# def with_tax(amount):\n# TAX_RATE = 0.2\n"
    assert cli_prompt.endswith(imported + FILES["shop/cart.py"])  # the best snippet nearest the file's text
    assert cli_prompt.startswith("# Path: shop/prices.py\n# TAX_RATE = 0.2\n")  # similar code (retrieval)
    assert "build/" not in cli_prompt  # .gitignore'd, however similar


async def test_the_server_sends_the_cli_prompt(workspace: Path, cli_prompt: str) -> None:
    assert await server_prompt(workspace, SETTINGS) == cli_prompt


async def test_the_remote_backend_is_given_the_same_prompt(workspace: Path, cli_prompt: str) -> None:
    tokenizer = load_model_files("bundled", None).tokenizer
    with hostile.HostileServer(tokenizer.encode(TOKENIZER_PROBE)) as remote:
        settings = {**SETTINGS, "backend": "openai", "backendUrl": remote.url}
        assert await server_prompt(workspace, settings) == cli_prompt
        sent = [request.json()["prompt"] for request in remote.asked("/v1/completions")]
    assert sent[-1] == tokenizer.encode(cli_prompt)  # as token ids: the whole prompt, snippets first


def test_the_cli_says_what_workspace_needs(workspace: Path) -> None:
    off = cli(workspace, {**SETTINGS, "contextSnippetTokens": 0}, "--workspace", str(workspace))
    assert off.returncode == 2 and "--workspace needs contextSnippetTokens above 0" in off.stderr
    missing = cli(workspace, SETTINGS, "--workspace", str(workspace / "nowhere"))
    assert missing.returncode == 2 and "not a folder" in missing.stderr


def test_the_readme_example_runs_as_written() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Context from other files\n", 1)[1].split("\n## ", 1)[0]
    command = re.search(r"```sh\n(.+?)\n```", section, re.DOTALL).group(1).strip()
    program, *arguments = shlex.split(command)
    assert program == "codegen-lsp"
    done = subprocess.run(
        [sys.executable, "-m", "codegen_lsp.lsp_server", *arguments],
        capture_output=True, text=True, env=server_env(), timeout=300, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    prompt = json.loads(done.stdout)["prompt"]
    cart = (REPO / "examples" / "shop" / "cart.py").read_text(encoding="utf-8")
    assert prompt.endswith(
        "# Path: prices.py\n# def discount(total: float, percent: float) -> float:\n"
        "# def with_tax(amount: float) -> float:\n# TAX_RATE = 0.2\n" + cart[: cart.index("    return ") + 11]
    )
