-- The Neovim a person sees in tests/test_editor_screens.py (in tmux): --clean plus this plugin, set up from the
-- case file the test wrote; no automatic indent, so typed text lands as typed. Like a person's config it has a
-- statusline showing the plugin's status and a <Tab> mapping of its own (four spaces), which the plugin's <Tab>
-- falls back to where no ghost text shows.
local here = vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2))
vim.opt.rtp:prepend(vim.fs.dirname(here))
vim.o.swapfile = false
vim.o.shortmess = vim.o.shortmess .. 'I'
vim.o.number = true
vim.o.termguicolors = true
vim.o.autoindent = false
vim.cmd('filetype indent off')
vim.lsp.set_log_level('INFO') -- the server's window/logMessage lines land in lsp.log

vim.cmd('inoremap <Tab> <Space><Space><Space><Space>')
vim.o.laststatus = 2
vim.o.completeopt = 'menu,menuone,noselect'
vim.o.statusline = ' %t %= %{v:lua.require("codegen_lsp").status()} '
_G.status_history = {} -- every status text, in order (the test reads it: loading may pass between two looks)
vim.api.nvim_create_autocmd('User', {
  pattern = 'CodegenLspStatus',
  callback = function()
    local text = require('codegen_lsp').status()
    if text ~= '' and text ~= _G.status_history[#_G.status_history] then
      table.insert(_G.status_history, text)
    end
  end,
})

local case = vim.json.decode(table.concat(vim.fn.readfile(vim.env.CODEGEN_LSP_TEST_CASE), '\n'))
require('codegen_lsp').setup({ cmd = case.server, settings = case.settings })
