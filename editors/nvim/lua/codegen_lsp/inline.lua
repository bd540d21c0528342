-- Ghost text from `textDocument/inlineCompletion`, for Neovim < 0.12 (which has no client for it).
--
-- While typing in Insert mode each buffer asks the server (debounced, the previous request cancelled) and
-- shows the first item as an extmark: inline virtual text at the cursor, virtual lines below for the rest.
-- Any edit or cursor move clears it and asks again; accepting replaces the item's range with its text.
local compat = require('codegen_lsp.compat')

local api = vim.api
local uv = vim.uv or vim.loop

local M = {}

M.namespace = api.nvim_create_namespace('codegen_lsp.inline')

local METHOD = 'textDocument/inlineCompletion'
local TRIGGER_INVOKED, TRIGGER_AUTOMATIC = 1, 2

---@class codegen_lsp.Suggestion
---@field text string what the ghost shows: the item's text past what is already typed
---@field insert string the item's whole insertText
---@field range integer[] {start_row, start_col, end_row, end_col}: 0-based rows, byte columns

---@class codegen_lsp.InlineState
---@field client_id integer
---@field opts table
---@field timer uv.uv_timer_t?
---@field request_id integer?
---@field items codegen_lsp.Suggestion[]
---@field index integer
---@field extmark integer?
---@field anchor integer[]? {changedtick, row, col} the suggestion belongs to
---@field group integer

---@type table<integer, codegen_lsp.InlineState>
local states = {}

local function in_insert_mode()
  return api.nvim_get_mode().mode:sub(1, 1) == 'i'
end

local function cursor_of(bufnr)
  local win = api.nvim_get_current_win()
  if api.nvim_win_get_buf(win) ~= bufnr then
    return nil
  end
  local cursor = api.nvim_win_get_cursor(win)
  return { api.nvim_buf_get_changedtick(bufnr), cursor[1] - 1, cursor[2] }, win
end

local function same_place(a, b)
  return a ~= nil and b ~= nil and a[1] == b[1] and a[2] == b[2] and a[3] == b[3]
end

local function cancel(st)
  if st.request_id then
    local client = vim.lsp.get_client_by_id(st.client_id)
    if client then
      compat.cancel_request(client, st.request_id)
    end
    st.request_id = nil
  end
  if st.timer then
    st.timer:stop()
  end
end

local function hide(bufnr, st)
  if st.extmark then
    pcall(api.nvim_buf_del_extmark, bufnr, M.namespace, st.extmark)
    st.extmark = nil
  end
end

--- Forget the suggestion and any request in flight.
function M.clear(bufnr)
  local st = states[bufnr]
  if st then
    cancel(st)
    hide(bufnr, st)
    st.items, st.index, st.anchor = {}, 1, nil
  end
end

local function render(bufnr, st)
  hide(bufnr, st)
  local item = st.items[st.index]
  if not item or not st.anchor then
    return
  end
  local hl = st.opts.hl_group
  local lines = vim.split(item.text, '\n', { plain = true })
  -- right_gravity: Neovim draws the cursor before inline virtual text whose mark has right gravity, and after
  -- it (as if typed) for left gravity (seen on screen in tests/test_editor_screens.py).
  local mark = { virt_text_pos = 'inline', hl_mode = 'combine', right_gravity = true }
  if lines[1] ~= '' then
    mark.virt_text = { { lines[1], hl } }
  end
  if #lines > 1 then
    mark.virt_lines = {}
    for i = 2, #lines do
      table.insert(mark.virt_lines, { { lines[i], hl } })
    end
  end
  st.extmark = api.nvim_buf_set_extmark(bufnr, M.namespace, st.anchor[2], st.anchor[3], mark)
end

--- An LSP item as a suggestion at the cursor, or nil if it does not fit there.
local function to_suggestion(bufnr, client, raw, row, col)
  local insert = raw.insertText
  if type(insert) == 'table' then
    insert = insert.value -- a snippet: shown and inserted as plain text
  end
  if type(insert) ~= 'string' then
    return nil
  end
  local range = { row, col, row, col }
  if raw.range then
    local s, e = raw.range.start, raw.range['end']
    range = {
      s.line,
      compat.byte_col(bufnr, s.line, s.character, client.offset_encoding),
      e.line,
      compat.byte_col(bufnr, e.line, e.character, client.offset_encoding),
    }
  end
  -- The range may start before the cursor (text already typed that the item repeats); it must not start
  -- on another line or after the cursor, nor end before it.
  if range[1] ~= row or range[2] > col or range[3] < row or (range[3] == row and range[4] < col) then
    return nil
  end
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, true)[1]
  local typed = line:sub(range[2] + 1, col)
  if insert:sub(1, #typed) ~= typed then
    return nil
  end
  local text = insert:sub(#typed + 1)
  if text == '' then
    return nil
  end
  return { text = text, insert = insert, range = range }
end

local function on_result(bufnr, request_id, err, result)
  local st = states[bufnr]
  if not st or st.request_id ~= request_id then
    return -- superseded
  end
  st.request_id = nil
  if err or not result then
    return
  end
  local place = cursor_of(bufnr)
  if not same_place(place, st.anchor) or not in_insert_mode() then
    return -- typed or moved meanwhile
  end
  local client = vim.lsp.get_client_by_id(st.client_id)
  if not client then
    return
  end
  local items = {}
  for _, raw in ipairs(result.items or result) do
    local item = to_suggestion(bufnr, client, raw, place[2], place[3])
    if item then
      table.insert(items, item)
    end
  end
  st.items, st.index = items, 1
  render(bufnr, st)
end

--- Ask the server now. `invoked`: the person asked (the server then completes even mid-word).
function M.request(bufnr, invoked)
  bufnr = compat.buf(bufnr)
  local st = states[bufnr]
  if not st then
    return
  end
  cancel(st)
  hide(bufnr, st)
  st.items, st.index = {}, 1
  local client = vim.lsp.get_client_by_id(st.client_id)
  local place, win = cursor_of(bufnr)
  if not client or not place then
    return
  end
  st.anchor = place
  local params = vim.lsp.util.make_position_params(win, client.offset_encoding)
  params.context = { triggerKind = invoked and TRIGGER_INVOKED or TRIGGER_AUTOMATIC }
  local request_id
  local ok, id = compat.request(client, METHOD, params, function(err, result)
    on_result(bufnr, request_id, err, result)
  end, bufnr)
  if ok then
    request_id = id
    st.request_id = id
  end
end

local function schedule(bufnr, st)
  cancel(st)
  if not st.opts.auto_trigger then
    return
  end
  st.timer = st.timer or uv.new_timer()
  st.timer:start(
    st.opts.debounce_ms,
    0,
    vim.schedule_wrap(function()
      if states[bufnr] == st and in_insert_mode() and api.nvim_get_current_buf() == bufnr then
        M.request(bufnr, false)
      end
    end)
  )
end

local function on_edit_or_move(bufnr)
  local st = states[bufnr]
  if not st then
    return
  end
  if same_place(cursor_of(bufnr), st.anchor) then
    return -- nothing changed since we asked: our own edit (a partial accept), or a no-op move
  end
  hide(bufnr, st)
  st.items, st.anchor = {}, nil
  schedule(bufnr, st)
end

---@return codegen_lsp.Suggestion?
function M.current(bufnr)
  local st = states[compat.buf(bufnr)]
  return st and st.extmark and st.items[st.index] or nil
end

--- The text the ghost shows, read back from the extmark (what the person sees), or nil.
function M.ghost_text(bufnr)
  bufnr = compat.buf(bufnr)
  local marks = api.nvim_buf_get_extmarks(bufnr, M.namespace, 0, -1, { details = true })
  if #marks == 0 then
    return nil
  end
  local details = marks[1][4]
  local parts = {}
  for _, chunk in ipairs(details.virt_text or {}) do
    table.insert(parts, chunk[1])
  end
  for _, line in ipairs(details.virt_lines or {}) do
    table.insert(parts, '\n')
    for _, chunk in ipairs(line) do
      table.insert(parts, chunk[1])
    end
  end
  return table.concat(parts)
end

--- How much of the ghost `how` ('all' | 'word' | 'line') takes.
local function portion(text, how)
  if how == 'word' then
    return text:match('^%s*[%w_]+') or text:match('^%s*[^%s%w_]+') or text
  elseif how == 'line' then
    local first = text:match('^[^\n]+')
    return first or text:match('^\n[^\n]*') or text
  end
  return text
end

--- Insert the suggestion (or its next word / line). Returns true if there was one to accept.
function M.accept(bufnr, how)
  bufnr = compat.buf(bufnr)
  local st = states[bufnr]
  local item = M.current(bufnr)
  local place, win = cursor_of(bufnr)
  if not st or not item or not place or not same_place(place, st.anchor) then
    return false
  end
  local part = portion(item.text, how or 'all')
  local whole = part == item.text
  local s_row, s_col, e_row, e_col, new_text
  if whole then -- the item's own edit: its range, its whole text
    s_row, s_col, e_row, e_col = unpack(item.range)
    new_text = item.insert
  else -- a piece: inserted at the cursor, the rest stays a suggestion
    s_row, s_col, e_row, e_col = place[2], place[3], place[2], place[3]
    new_text = part
  end
  cancel(st)
  hide(bufnr, st)
  local lines = vim.split(new_text, '\n', { plain = true })
  api.nvim_buf_set_text(bufnr, s_row, s_col, e_row, e_col, lines)
  local row = s_row + #lines - 1
  local col = #lines == 1 and s_col + #lines[1] or #lines[#lines]
  api.nvim_win_set_cursor(win, { row + 1, col })
  if whole then
    st.items, st.anchor = {}, nil
  else
    local rest = item.text:sub(#part + 1)
    st.items = { { text = rest, insert = rest, range = { row, col, row, col } } }
    st.index = 1
    st.anchor = { api.nvim_buf_get_changedtick(bufnr), row, col }
    render(bufnr, st)
  end
  return true
end

--- Hide the suggestion. Returns true if one was showing.
function M.dismiss(bufnr)
  bufnr = compat.buf(bufnr)
  local shown = M.current(bufnr) ~= nil
  M.clear(bufnr)
  return shown
end

--- Show the next (step 1) or previous (-1) of several suggestions.
function M.cycle(bufnr, step)
  bufnr = compat.buf(bufnr)
  local st = states[bufnr]
  if not st or not st.extmark or #st.items < 2 then
    return false
  end
  st.index = (st.index - 1 + step) % #st.items + 1
  render(bufnr, st)
  return true
end

local function map_keys(bufnr, keymaps)
  -- A key with no suggestion showing (or with the popup menu open) does what it does without us.
  local function map(lhs, desc, action)
    if not lhs then
      return
    end
    vim.keymap.set('i', lhs, function()
      if vim.fn.pumvisible() == 0 and action() then
        return
      end
      api.nvim_feedkeys(api.nvim_replace_termcodes(lhs, true, false, true), 'n', false)
    end, { buffer = bufnr, desc = 'CodeGen LSP: ' .. desc })
  end
  map(keymaps.accept, 'accept the suggestion', function()
    return M.accept(bufnr, 'all')
  end)
  map(keymaps.accept_word, 'accept the next word of the suggestion', function()
    return M.accept(bufnr, 'word')
  end)
  map(keymaps.accept_line, 'accept the next line of the suggestion', function()
    return M.accept(bufnr, 'line')
  end)
  map(keymaps.dismiss, 'dismiss the suggestion', function()
    return M.dismiss(bufnr)
  end)
  map(keymaps.next, 'next suggestion', function()
    return M.cycle(bufnr, 1)
  end)
  map(keymaps.prev, 'previous suggestion', function()
    return M.cycle(bufnr, -1)
  end)
  if keymaps.suggest then
    vim.keymap.set('i', keymaps.suggest, function()
      M.request(bufnr, true)
    end, { buffer = bufnr, desc = 'CodeGen LSP: suggest now' })
  end
end

function M.attach(client, bufnr, opts)
  if states[bufnr] then
    states[bufnr].client_id = client.id
    return
  end
  local group = api.nvim_create_augroup('codegen_lsp.inline.' .. bufnr, { clear = true })
  local st = { client_id = client.id, opts = opts, items = {}, index = 1, group = group }
  states[bufnr] = st
  api.nvim_create_autocmd({ 'TextChangedI', 'TextChangedP', 'CursorMovedI' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      on_edit_or_move(bufnr)
    end,
  })
  api.nvim_create_autocmd('InsertEnter', {
    group = group,
    buffer = bufnr,
    callback = function()
      schedule(bufnr, st)
    end,
  })
  api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      M.clear(bufnr)
    end,
  })
  api.nvim_create_autocmd({ 'BufUnload', 'BufWipeout' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      M.detach(bufnr)
    end,
  })
  map_keys(bufnr, opts.keymaps)
end

function M.detach(bufnr, client_id)
  local st = states[bufnr]
  if not st or (client_id and st.client_id ~= client_id) then
    return
  end
  M.clear(bufnr)
  if st.timer then
    st.timer:close()
  end
  pcall(api.nvim_del_augroup_by_id, st.group)
  for _, lhs in pairs(st.opts.keymaps) do
    if lhs then
      pcall(vim.keymap.del, 'i', lhs, { buffer = bufnr })
    end
  end
  states[bufnr] = nil
end

return M
