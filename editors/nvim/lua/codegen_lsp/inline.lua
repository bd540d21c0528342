-- Ghost text from `textDocument/inlineCompletion` (Neovim < 0.12 has no client for it; on 0.12 this path also
-- serves whatever Neovim's own does not: see native.lua).
--
-- While typing in Insert mode each buffer asks the server (the previous request cancelled; the server waits its
-- `debounceMs`, and `debounce_ms` adds a wait here only when set) and shows the first item as an extmark: inline
-- virtual text at the cursor, virtual lines below for the rest. Typing the ghost's next characters keeps it
-- (trimmed at once, then refreshed); any other edit or move clears it and asks again; accepting replaces the
-- item's range with its text. Nothing is asked, and nothing shown, while the server's status says completions
-- are off for the buffer (status.lua) or a completion menu is open (menu.lua).
local compat = require('codegen_lsp.compat')
local fallback = require('codegen_lsp.fallback')
local menu = require('codegen_lsp.menu')
local status = require('codegen_lsp.status')

local api = vim.api
local uv = vim.uv or vim.loop

local M = {}

M.namespace = api.nvim_create_namespace('codegen_lsp.inline')

local METHOD = 'textDocument/inlineCompletion'
-- The same request with `numCandidates` (the alternatives a cycle key fetches on first use).
local MORE_METHOD = 'codegenLsp/inlineCompletion'
local MORE_CANDIDATES = 3
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
---@field line string? the anchor's line as it was when the suggestion came
---@field more boolean? the items include the alternatives (fetched once per suggestion)
---@field fallbacks table<string, table|false> the person's own mappings of our keys
---@field group integer

---@type table<integer, codegen_lsp.InlineState>
local states = {}

local function in_insert_mode()
  return api.nvim_get_mode().mode:sub(1, 1) == 'i'
end

local function line_at(bufnr, row)
  return api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
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

--- Ghost text may show in `bufnr` now: the server completes there and no completion menu is open.
local function allowed(bufnr)
  return status.enabled_for(bufnr) and not menu.visible()
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

local function forget(st)
  st.items, st.index, st.anchor, st.line, st.more = {}, 1, nil, nil, false
end

--- Forget the suggestion and any request in flight.
function M.clear(bufnr)
  local st = states[bufnr]
  if st then
    cancel(st)
    hide(bufnr, st)
    forget(st)
  end
end

local function render(bufnr, st)
  hide(bufnr, st)
  local item = st.items[st.index]
  if not item or not st.anchor then
    return
  end
  local hl = st.opts.hl_group or 'Comment'
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
  local typed = line_at(bufnr, row):sub(range[2] + 1, col)
  if insert:sub(1, #typed) ~= typed then
    return nil
  end
  local text = insert:sub(#typed + 1)
  if text == '' then
    return nil
  end
  return { text = text, insert = insert, range = range }
end

--- `items` after the shown one, without repeats (the alternatives include the shown suggestion).
local function with_alternatives(shown, items)
  local out, seen = { shown }, { [shown.text] = true }
  for _, item in ipairs(items) do
    if not seen[item.text] then
      seen[item.text] = true
      table.insert(out, item)
    end
  end
  return out
end

local function on_result(bufnr, request_id, err, result, opts)
  local st = states[bufnr]
  if not st or st.request_id ~= request_id then
    return -- superseded
  end
  st.request_id = nil
  if err or not result then
    return -- whatever shows (a kept or cycled suggestion) stays
  end
  local place = cursor_of(bufnr)
  if not same_place(place, st.anchor) or not in_insert_mode() or not allowed(bufnr) then
    hide(bufnr, st)
    return -- typed or moved meanwhile, switched off, or a menu opened
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
  local shown = st.extmark and st.items[st.index]
  if opts.more and shown then
    st.items = with_alternatives(shown, items)
    st.index = (opts.step or 1) > 0 and math.min(2, #st.items) or #st.items
  else
    st.items, st.index = items, 1
  end
  render(bufnr, st)
end

--- Ask the server now. `invoked`: the person asked (the server then completes even mid-word).
--- opts.keep: what shows stays until the answer replaces it (a refresh); opts.more: ask for the alternatives
--- and show the one `opts.step` away. Returns true when a request went out.
function M.request(bufnr, invoked, opts)
  opts = opts or {}
  bufnr = compat.buf(bufnr)
  local st = states[bufnr]
  if not st then
    return false
  end
  cancel(st)
  if not allowed(bufnr) then
    hide(bufnr, st)
    forget(st)
    return false
  end
  if not opts.keep then
    hide(bufnr, st)
    forget(st)
  end
  local client = vim.lsp.get_client_by_id(st.client_id)
  local place, win = cursor_of(bufnr)
  if not client or not place then
    return false
  end
  st.anchor, st.line = place, line_at(bufnr, place[2])
  local params = vim.lsp.util.make_position_params(win, client.offset_encoding)
  params.context = { triggerKind = invoked and TRIGGER_INVOKED or TRIGGER_AUTOMATIC }
  local method = METHOD
  if opts.more then
    method, params.numCandidates = MORE_METHOD, MORE_CANDIDATES
  end
  local request_id
  local ok, id = compat.request(client, method, params, function(err, result)
    on_result(bufnr, request_id, err, result, opts)
  end, bufnr)
  if ok then
    request_id = id
    st.request_id = id
  end
  return ok and true or false
end

local function schedule(bufnr, st, keep)
  cancel(st)
  if not st.opts.auto_trigger then
    return
  end
  st.timer = st.timer or uv.new_timer()
  -- No wait of our own by default (the server debounces): 0 ms still folds the events of one keystroke.
  st.timer:start(
    st.opts.debounce_ms or 0,
    0,
    vim.schedule_wrap(function()
      if states[bufnr] == st and in_insert_mode() and api.nvim_get_current_buf() == bufnr then
        M.request(bufnr, false, { keep = keep })
      end
    end)
  )
end

--- The person typed the ghost's next characters: trim what shows (no flicker) and return true.
local function typed_through(bufnr, st, place)
  local item = st.items[st.index]
  if not (st.extmark and item and st.anchor and st.line and place) then
    return false
  end
  local row, col = st.anchor[2], st.anchor[3]
  if place[2] ~= row or place[3] <= col then
    return false
  end
  local line = line_at(bufnr, row)
  local typed = line:sub(col + 1, place[3])
  if line ~= st.line:sub(1, col) .. typed .. st.line:sub(col + 1) then
    return false -- not (only) typed at the cursor
  end
  local kept, index = {}, nil
  for i, it in ipairs(st.items) do
    if it.text:sub(1, #typed) == typed and #it.text > #typed then
      local r = it.range
      table.insert(kept, {
        text = it.text:sub(#typed + 1),
        insert = it.insert,
        range = { r[1], r[2], r[3], r[3] == row and r[4] + #typed or r[4] },
      })
      if i == st.index then
        index = #kept
      end
    end
  end
  if not index then
    return false
  end
  st.items, st.index, st.anchor, st.line = kept, index, place, line
  render(bufnr, st)
  return true
end

local function on_edit_or_move(bufnr)
  local st = states[bufnr]
  if not st then
    return
  end
  local place = cursor_of(bufnr)
  if same_place(place, st.anchor) then
    return -- nothing changed since we asked: our own edit (a partial accept), or a no-op move
  end
  if typed_through(bufnr, st, place) then
    schedule(bufnr, st, true)
    return
  end
  hide(bufnr, st)
  forget(st)
  schedule(bufnr, st, false)
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
    forget(st)
  else
    local rest = item.text:sub(#part + 1)
    st.items = { { text = rest, insert = rest, range = { row, col, row, col } } }
    st.index, st.more = 1, true
    st.anchor = { api.nvim_buf_get_changedtick(bufnr), row, col }
    st.line = line_at(bufnr, row)
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

--- Show the next (step 1) or previous (-1) suggestion; the first cycle fetches the alternatives (as Copilot
--- does: one candidate is asked for while typing, more only when the person wants them). Returns true when a
--- suggestion shows (the key is then ours even if there is only the one).
function M.cycle(bufnr, step)
  bufnr = compat.buf(bufnr)
  local st = states[bufnr]
  if not st or not st.extmark then
    return false
  end
  if #st.items >= 2 then
    st.index = (st.index - 1 + step) % #st.items + 1
    render(bufnr, st)
  elseif not st.more then
    st.more = true
    M.request(bufnr, true, { keep = true, more = true, step = step })
  end
  return true
end

--- Hide the ghost in buffers the server's new status switches off.
function M.on_status()
  for bufnr, st in pairs(states) do
    if st.extmark and not status.enabled_for(bufnr) then
      M.clear(bufnr)
    end
  end
end

local function map_keys(bufnr, st)
  local keymaps = st.opts.keymaps
  -- A key with no suggestion showing (or with a completion menu open) does what it did without us: the
  -- person's own mapping of it (captured now, before ours hides it), else the key itself.
  local function map(lhs, desc, action)
    if not lhs then
      return
    end
    st.fallbacks[lhs] = fallback.capture(bufnr, lhs) or false
    vim.keymap.set('i', lhs, function()
      if not menu.visible() and action() then
        return
      end
      fallback.run(lhs, st.fallbacks[lhs] or nil)
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
  local st = { client_id = client.id, opts = opts, items = {}, index = 1, group = group, fallbacks = {} }
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
      schedule(bufnr, st, false)
    end,
  })
  api.nvim_create_autocmd('CompleteChanged', { -- a menu opened (or moved): no ghost under it
    group = group,
    buffer = bufnr,
    callback = function()
      M.clear(bufnr)
    end,
  })
  api.nvim_create_autocmd('CompleteDone', { -- the menu closed: ask again
    group = group,
    buffer = bufnr,
    callback = function()
      schedule(bufnr, st, false)
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
  map_keys(bufnr, st)
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
