-- The `textDocument/completion` fallback through Neovim's own LSP completion (omnifunc, vim.lsp.completion).
--
-- Neovim builds a menu entry's `word` from a plain-text item's textEdit as its first run of non-blanks
-- (`newText:match('^(%S*)')`), and applies the full edit only for snippets. Our items are whole lines or
-- blocks, so the menu shows the first line and, once an item is accepted (<C-y>), the inserted word is
-- replaced by the item's whole newText.
local api = vim.api

local M = {}

local function first_line(text)
  return text:match('^[^\n]*')
end

local function new_text_of(item)
  local edit = item.textEdit
  return edit and edit.newText or item.insertText or item.label
end

--- vim.lsp.completion's `convert`: the menu entry for one of our items.
local function convert(item)
  return { word = first_line(new_text_of(item)), abbr = item.label, menu = '[codegen]' }
end

local function expand_accepted(client_id)
  local completed = vim.v.completed_item
  local lsp = vim.tbl_get(completed or {}, 'user_data', 'nvim', 'lsp')
  if not lsp or lsp.client_id ~= client_id or not lsp.completion_item then
    return
  end
  local reason = vim.tbl_get(vim.v.event or {}, 'reason')
  if reason ~= nil and reason ~= 'accept' then
    return -- cancelled (<C-e>) or abandoned by typing on: leave the word as it is
  end
  local item = lsp.completion_item
  local new_text = new_text_of(item)
  if item.insertTextFormat == 2 or new_text == completed.word then
    return -- a snippet (Neovim expands it) or nothing more to insert
  end
  local win = api.nvim_get_current_win()
  local bufnr = api.nvim_get_current_buf()
  local row, col = unpack(api.nvim_win_get_cursor(win))
  local word = completed.word or ''
  local start = col - #word
  local line = api.nvim_buf_get_lines(bufnr, row - 1, row, true)[1]
  if start < 0 or line:sub(start + 1, col) ~= word then
    return
  end
  local lines = vim.split(new_text, '\n', { plain = true })
  api.nvim_buf_set_text(bufnr, row - 1, start, row - 1, col, lines)
  local end_col = #lines == 1 and start + #lines[1] or #lines[#lines]
  api.nvim_win_set_cursor(win, { row + #lines - 1, end_col })
end

function M.attach(client, bufnr, opts)
  -- codegen-lsp offers no completion menu to clients that show its ghost text (inline.enabled).
  if not opts.enabled or not client.server_capabilities.completionProvider then
    return
  end
  if opts.omnifunc then
    vim.bo[bufnr].omnifunc = 'v:lua.vim.lsp.omnifunc'
  end
  if vim.lsp.completion and vim.lsp.completion.enable then
    vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = opts.autotrigger, convert = convert })
  end
  api.nvim_create_autocmd('CompleteDone', {
    group = api.nvim_create_augroup('codegen_lsp.completion.' .. bufnr, { clear = true }),
    buffer = bufnr,
    callback = function()
      expand_accepted(client.id)
    end,
  })
end

function M.detach(bufnr)
  pcall(api.nvim_del_augroup_by_name, 'codegen_lsp.completion.' .. bufnr)
end

return M
