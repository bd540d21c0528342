-- Every default of the plugin, in one table; `setup(opts)` deep-merges the user's opts over it.
local M = {}

M.defaults = {
  -- How to start the server: a list (argv) that speaks LSP on stdin/stdout.
  cmd = { 'codegen-lsp', 'serve', '--stdio' },
  -- Buffers the server is started for: the six languages CodeGen was trained on (Neovim's filetype is the LSP
  -- language id). The server completes those its `languages` setting enables (`auto`: what the model knows).
  filetypes = { 'c', 'cpp', 'go', 'java', 'javascript', 'javascriptreact', 'python' },
  -- The workspace root is the nearest folder holding one of these (single-file mode without one).
  root_markers = { 'pyproject.toml', 'setup.py', 'setup.cfg', 'requirements.txt', '.git' },
  -- Server settings, camelCase as in the server's README (model, device, dtype, maxNewTokens, ...).
  -- Sent as `initializationOptions` and in `workspace/didChangeConfiguration`.
  settings = {},
  -- Extra fields for vim.lsp.config / vim.lsp.start (on_attach, capabilities, ...).
  lsp = {},

  inline = {
    enabled = true,
    -- Neovim >= 0.12: let the built-in vim.lsp.inline_completion show the ghost text where it can do what these
    -- options ask (no manual mode, no debounce_ms, hl_group = false, accept_word / accept_line / dismiss = false;
    -- see native.lua); otherwise, and on 0.10 / 0.11, the plugin's own ghost text does.
    native = true,
    -- The server waits its `debounceMs` setting (25 ms) after a keystroke; set a number here to wait longer
    -- before the plugin even asks (nil: ask at once, the previous request cancelled).
    debounce_ms = nil,
    -- Ask on its own while typing; with false only `require('codegen_lsp').suggest()` asks.
    auto_trigger = true,
    hl_group = 'Comment',
    -- Insert-mode keys; false turns a key off. A key with no suggestion showing does what it did before.
    keymaps = {
      accept = '<Tab>',
      accept_word = '<M-Right>',
      accept_line = '<M-C-Right>',
      dismiss = '<C-]>',
      next = '<M-]>',
      prev = '<M-[>',
      suggest = '<M-\\>',
    },
  },

  health = {
    -- `:checkhealth codegen_lsp` runs `codegen-lsp doctor`: this command line (nil: `cmd` with `serve ...`
    -- replaced by `doctor --settings <settings as JSON>`).
    doctor_cmd = nil,
    timeout_ms = 120000,
  },

  completion = {
    -- `textDocument/completion` through Neovim's LSP completion (<C-x><C-o>, or automatic below).
    enabled = true,
    -- Open the menu on its own (vim.lsp.completion autotrigger, Neovim >= 0.11); off: ghost text does that.
    autotrigger = false,
    -- Set 'omnifunc' to vim.lsp.omnifunc in attached buffers.
    omnifunc = true,
  },
}

return M
