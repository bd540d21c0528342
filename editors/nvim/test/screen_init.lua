-- The Neovim a person sees in tests/test_editor_screens.py (in tmux): --clean plus this plugin, set up from the
-- case file the test wrote; no automatic indent, so typed text lands as typed.
local here = vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2))
vim.opt.rtp:prepend(vim.fs.dirname(here))
vim.o.swapfile = false
vim.o.shortmess = vim.o.shortmess .. 'I'
vim.o.number = true
vim.o.termguicolors = true
vim.o.autoindent = false
vim.cmd('filetype indent off')
vim.lsp.set_log_level('INFO') -- the server's window/logMessage lines land in lsp.log

local case = vim.json.decode(table.concat(vim.fn.readfile(vim.env.CODEGEN_LSP_TEST_CASE), '\n'))
require('codegen_lsp').setup({ cmd = case.server, settings = case.settings })
