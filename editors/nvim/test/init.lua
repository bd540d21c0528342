-- The Neovim under test: --clean plus this plugin, set up from the case file the test wrote.
local here = vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2))
vim.opt.rtp:prepend(vim.fs.dirname(here))
vim.o.swapfile = false
vim.o.shortmess = vim.o.shortmess .. 'I'
vim.o.completeopt = 'menu,menuone,noinsert'
vim.lsp.set_log_level(vim.env.CODEGEN_LSP_NVIM_LOG_LEVEL or 'WARN')

local case = vim.json.decode(table.concat(vim.fn.readfile(vim.env.CODEGEN_LSP_TEST_CASE), '\n'))
require('codegen_lsp').setup({
  cmd = case.server,
  settings = case.settings,
  -- The server offers no completion menu to clients that show its ghost text (the two would supersede
  -- each other), so the menu is tested in a session without ghost text.
  inline = { enabled = vim.env.CODEGEN_LSP_TEST_INLINE ~= '0' },
})
