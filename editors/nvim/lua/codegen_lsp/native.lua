-- Neovim >= 0.12 has its own inline completion client (`vim.lsp.inline_completion`). It asks on every edit,
-- draws with its own highlight (ComplHint) and offers accept and next / previous only; so it shows the ghost
-- text only where the options ask for nothing more. Otherwise the plugin's own path (inline.lua) does, on 0.12
-- as on 0.10 / 0.11: manual mode, a debounce of ours, our highlight, the word / line / dismiss keys, no ghost
-- under a completion menu.
local fallback = require('codegen_lsp.fallback')
local status = require('codegen_lsp.status')

local api = vim.api

local M = {}

--- Whether Neovim's own client can do what `opts` (the `inline` options) ask; false and why when not.
---@return boolean, string?
function M.can_serve(opts, ic)
  ic = ic or vim.lsp.inline_completion
  if not ic then
    return false, 'this Neovim has no vim.lsp.inline_completion (0.12+)'
  end
  if not opts.native then
    return false, 'inline.native = false'
  end
  if not opts.auto_trigger then
    return false, 'manual mode (inline.auto_trigger = false)'
  end
  if opts.debounce_ms then
    return false, 'inline.debounce_ms is set'
  end
  if opts.hl_group then
    return false, 'inline.hl_group is set (false: Neovim\'s ComplHint)'
  end
  for _, key in ipairs({ 'accept_word', 'accept_line', 'dismiss' }) do
    if opts.keymaps[key] then
      return false, ('inline.keymaps.%s is mapped'):format(key)
    end
  end
  return true
end

--- Neovim's own ghost text is showing in `bufnr`.
local function showing(bufnr)
  local ns = api.nvim_get_namespaces()['nvim.lsp.inline_completion']
  return ns ~= nil and #api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { limit = 1 }) > 0
end

--- Ask now (never accept: `get()` accepts when something shows).
function M.suggest(bufnr)
  if not showing(bufnr) and status.enabled_for(bufnr) then
    vim.lsp.inline_completion.get({ bufnr = bufnr })
  end
end

--- On with the server's status: off where the server is switched off.
function M.on_status(bufnr)
  vim.lsp.inline_completion.enable(status.enabled_for(bufnr), { bufnr = bufnr })
end

function M.attach(bufnr, opts)
  local ic = vim.lsp.inline_completion
  M.on_status(bufnr)
  local keys = opts.keymaps
  local function map(lhs, desc, action)
    if not lhs then
      return
    end
    local theirs = fallback.capture(bufnr, lhs)
    vim.keymap.set('i', lhs, function()
      if showing(bufnr) then
        action()
      else
        fallback.run(lhs, theirs)
      end
    end, { buffer = bufnr, desc = 'CodeGen LSP: ' .. desc })
  end
  map(keys.accept, 'accept the suggestion', function()
    ic.get({ bufnr = bufnr })
  end)
  local select = ic.select or ic.jump -- renamed during 0.12's development
  map(keys.next, 'next suggestion', function()
    select({ bufnr = bufnr, count = 1 })
  end)
  map(keys.prev, 'previous suggestion', function()
    select({ bufnr = bufnr, count = -1 })
  end)
  if keys.suggest then
    vim.keymap.set('i', keys.suggest, function()
      M.suggest(bufnr)
    end, { buffer = bufnr, desc = 'CodeGen LSP: suggest now' })
  end
end

return M
