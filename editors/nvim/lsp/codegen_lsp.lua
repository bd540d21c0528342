-- Neovim 0.11's LSP config convention: `vim.lsp.enable('codegen_lsp')` finds this file on 'runtimepath' and
-- starts the server with it, with or without `require('codegen_lsp').setup()` (which calls vim.lsp.config
-- with the same table, its options merged in). Fields set by the person's own `vim.lsp.config('codegen_lsp',
-- {...})` win over these, as Neovim merges them.
return require('codegen_lsp').lsp_config()
