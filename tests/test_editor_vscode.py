"""The VS Code extension (editors/vscode): its settings mirror the server's, it compiles, and the server
answers it (through VS Code's own protocol stack) with the CLI's completion.

Needs node and `npm ci` in editors/vscode (editors/setup_tests.sh); skips without them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codegen_lsp.lsp_server.settings import Settings, to_wire
from tests.editor_support import EDITORS, editor_case, server_env

VSCODE = EDITORS / "vscode"

pytestmark = pytest.mark.editor


def _require_node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (editors/setup_tests.sh installs the editor test tools)")
    if not (VSCODE / "node_modules" / "vscode-languageclient").is_dir():
        pytest.skip("editors/vscode/node_modules is missing: run `npm ci` there (editors/setup_tests.sh)")
    return node


def test_package_json_settings_match_the_server() -> None:
    """package.json's codegenLsp.* settings are rendered from lsp_server/settings/schema.py: one source of truth."""
    done = subprocess.run([sys.executable, str(VSCODE / "sync_settings.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    properties = json.loads((VSCODE / "package.json").read_text())["contributes"]["configuration"]["properties"]
    for name, default in to_wire(Settings()).items():
        assert properties[f"codegenLsp.{name}"]["default"] == default, name


def test_package_json_contributes() -> None:
    package = json.loads((VSCODE / "package.json").read_text())
    assert "onLanguage:python" in package["activationEvents"]
    commands = {c["command"] for c in package["contributes"]["commands"]}
    assert "codegenLsp.restartServer" in commands
    properties = package["contributes"]["configuration"]["properties"]
    assert properties["codegenLsp.serverCommand"]["default"] == "codegen-lsp"
    assert properties["codegenLsp.serverArgs"]["default"] == ["serve", "--stdio"]
    assert package["main"] == "./out/extension.js"
    lock = json.loads((VSCODE / "package-lock.json").read_text())
    assert lock["packages"][""]["dependencies"] == package["dependencies"]


@pytest.fixture(scope="module")
def compiled() -> Path:
    _require_node()
    npm = shutil.which("npm")
    assert npm is not None
    done = subprocess.run([npm, "run", "compile"], cwd=VSCODE, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"tsc failed:\n{done.stdout}\n{done.stderr}"
    return VSCODE / "out"


def test_extension_compiles(compiled: Path) -> None:
    assert (compiled / "extension.js").is_file()
    assert (compiled / "settings.js").is_file()
    assert (compiled / "serverLog.js").is_file()


def test_server_through_vscode_protocol_stack_and_extension(
    compiled: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """test/server.test.cjs: VS Code's protocol stack and capabilities against the server;
    test/extension.test.cjs: out/extension.js activated (fake `vscode`, real vscode-languageclient): ghost text,
    the status item, toggle (no request while off), the menu; test/status.test.cjs: the item's words and menu."""
    node = _require_node()
    case = editor_case(tiny_model_dir)
    case_file = case.write_json(tmp_path / "case.json")
    # node:test's `settingKeys` check: the extension sends exactly the server's settings.
    data = json.loads(case_file.read_text()) | {"settingKeys": list(to_wire(Settings()))}
    case_file.write_text(json.dumps(data))
    env = server_env() | {"CODEGEN_LSP_TEST_CASE": str(case_file)}
    done = subprocess.run(
        [node, "--test", "--test-reporter=spec", "--test-concurrency=1", "test/server.test.cjs",
         "test/extension.test.cjs", "test/status.test.cjs"],
        cwd=VSCODE, env=env, capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-8000:]
    assert "# skipped 0" in output or "skipped 0" in output, output[-3000:]
    assert "# fail 0" in output or "fail 0" in output, output[-3000:]
