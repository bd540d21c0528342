-- The Neovim under test: --clean plus this plugin, set up from the case file the test wrote, with what a person
-- has in their config: a statusline showing the plugin's status, and an Insert-mode <Tab> mapping of their own
-- (the plugin's <Tab> falls back to it). CODEGEN_LSP_TEST_PYLSP=1 also runs pylsp for Python buffers.
local here = vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2))
vim.opt.rtp:prepend(vim.fs.dirname(here))
vim.o.swapfile = false
vim.o.shortmess = vim.o.shortmess .. 'I'
vim.o.completeopt = 'menu,menuone,noinsert'
vim.lsp.set_log_level(vim.env.CODEGEN_LSP_NVIM_LOG_LEVEL or 'WARN')

-- The person's own <Tab>: the next menu entry with a menu open, else a marker the tests look for.
vim.cmd([[inoremap <expr> <Tab> pumvisible() ? "\<C-n>" : "TAB!"]])
vim.o.laststatus = 2
vim.o.statusline = '%f %= %{v:lua.require("codegen_lsp").status()}'
-- Every status text the statusline showed, in order (the tests read it).
_G.status_history = {}
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
require('codegen_lsp').setup({
  cmd = case.server,
  settings = case.settings,
  -- The server offers no completion menu to clients that show its ghost text (the two would supersede
  -- each other), so the menu is tested in a session without ghost text.
  inline = { enabled = vim.env.CODEGEN_LSP_TEST_INLINE ~= '0' },
})

if vim.env.CODEGEN_LSP_TEST_PYLSP == '1' then
  vim.lsp.config('pylsp', { cmd = { 'pylsp' }, filetypes = { 'python' }, root_markers = { '.git' } })
  vim.lsp.enable('pylsp')
end
