-- The server's status, as the server sends it (`codegenLsp/status`, a notification and a request): the one
-- source of truth for loading / ready / busy / error and for on / off. This module keeps the last status each
-- client sent, says whether a buffer is on, and renders a short text for statuslines.
--
-- The status (see the server's README): { state = 'loading'|'ready'|'busy'|'remoteDown'|'error'|'disabled'|
-- 'stopped', message, fraction, model, device, dtype, backend, lastLatencyMs, enabled, snoozedUntil,
-- disabledLanguages, disabledUris }.
local api = vim.api

local M = {}

M.METHOD = 'codegenLsp/status'

---@type table<integer, table> client id -> the last status it sent
local by_client = {}

local function name()
  return require('codegen_lsp').name
end

--- The client of ours attached to `bufnr` (any of ours for 0 / nil when none is attached there).
local function client_of(bufnr)
  local clients = vim.lsp.get_clients({ name = name(), bufnr = bufnr })
  if #clients == 0 and bufnr == nil then
    clients = vim.lsp.get_clients({ name = name() })
  end
  return clients[1]
end

local function changed(client_id)
  if vim.in_fast_event() then -- a client's on_exit
    vim.schedule(function()
      changed(client_id)
    end)
    return
  end
  vim.cmd('redrawstatus!')
  api.nvim_exec_autocmds('User', { pattern = 'CodegenLspStatus', modeline = false, data = { client_id = client_id } })
end

--- Keep a status the server sent (the notification's handler, and the request's).
function M.update(client_id, status)
  if type(status) ~= 'table' or type(status.state) ~= 'string' then
    return
  end
  by_client[client_id] = status
  changed(client_id)
end

--- vim.lsp handler for the `codegenLsp/status` notification.
function M.handler(_, result, ctx)
  M.update(ctx.client_id, result)
end

--- Ask the server for its status now (on attach: a plugin loaded late has missed the notifications).
function M.refresh(client)
  require('codegen_lsp.compat').request(client, M.METHOD, vim.NIL, function(err, result)
    if not err then
      M.update(client.id, result)
    end
  end)
end

function M.forget(client_id)
  by_client[client_id] = nil
  changed(client_id)
end

--- The last status of the client attached to `bufnr` (nil: no client, or no status yet).
function M.get(bufnr)
  local client = client_of(bufnr)
  return client and by_client[client.id] or nil, client
end

--- The server's milliseconds-or-seconds epoch time as seconds (nil when not a number).
local function epoch_s(t)
  if type(t) ~= 'number' then
    return nil
  end
  return t > 1e11 and t / 1000 or t
end

--- Minutes left of a snooze (nil: not snoozed).
function M.snooze_minutes_left(status)
  local until_s = epoch_s(status and status.snoozedUntil)
  if not until_s then
    return nil
  end
  local left = until_s - os.time()
  return left > 0 and math.ceil(left / 60) or nil
end

local function list(value)
  return type(value) == 'table' and value or {}
end

--- Whether the server completes in `bufnr`, by its last status: false and why when it is off there.
--- With no status yet the buffer counts as on (a server that sends none is never off).
---@return boolean, string?
function M.enabled_for(bufnr, status)
  bufnr = require('codegen_lsp.compat').buf(bufnr)
  status = status or M.get(bufnr)
  if not status then
    return true
  end
  if M.snooze_minutes_left(status) then
    return false, 'snoozed'
  end
  if status.enabled == false or status.state == 'disabled' then
    return false, 'off'
  end
  if vim.tbl_contains(list(status.disabledLanguages), vim.bo[bufnr].filetype) then
    return false, 'off for ' .. vim.bo[bufnr].filetype
  end
  if vim.tbl_contains(list(status.disabledUris), vim.uri_from_bufnr(bufnr)) then
    return false, 'off for this buffer'
  end
  return true
end

local LABELS = {
  loading = 'loading',
  ready = 'ready',
  busy = 'busy',
  remoteDown = 'remote down',
  error = 'error',
  disabled = 'off',
  stopped = 'stopped',
}

--- A short text for a statusline: '' where no codegen-lsp client is attached, else `CodeGen <state>`
--- (`CodeGen loading 42%`, `CodeGen downloading 120 / 800 MB`, `CodeGen ready`, `CodeGen off`,
--- `CodeGen snoozed 29m`, ...).
function M.short(bufnr)
  bufnr = require('codegen_lsp.compat').buf(bufnr)
  local status, client = M.get(bufnr)
  if not client then
    return ''
  end
  return M.render(status, bufnr)
end

--- The statusline text for `status` (nil: none came yet) in `bufnr`.
function M.render(status, bufnr)
  if not status then
    return 'CodeGen starting'
  end
  local minutes = M.snooze_minutes_left(status)
  if minutes then
    return ('CodeGen snoozed %dm'):format(minutes)
  end
  local on = M.enabled_for(bufnr, status)
  if not on then
    return 'CodeGen off'
  end
  local text = 'CodeGen ' .. (LABELS[status.state] or status.state)
  if status.state == 'loading' then
    if type(status.message) == 'string' and status.message:match('^downloading') then
      text = 'CodeGen ' .. status.message:sub(1, 40) -- the first download: "downloading 120 / 800 MB"
    elseif type(status.fraction) == 'number' then
      text = text .. (' %d%%'):format(math.floor(status.fraction * 100 + 0.5))
    end
  end
  return text
end

--- Everything the status says, for `:CodegenLsp status` (a few lines).
function M.describe(bufnr)
  bufnr = require('codegen_lsp.compat').buf(bufnr)
  local status, client = M.get(bufnr)
  if not client then
    return 'codegen-lsp is not attached to this buffer'
  end
  if not status then
    return 'codegen-lsp is attached (client ' .. client.id .. ') and has sent no status yet'
  end
  local on, why = M.enabled_for(bufnr, status)
  local head = 'codegen-lsp: ' .. (LABELS[status.state] or status.state)
  if type(status.message) == 'string' and status.message ~= '' and status.message ~= status.state then
    head = head .. ' — ' .. status.message
  end
  local lines = { head }
  local function add(label, value)
    if type(value) == 'string' and value ~= '' then
      table.insert(lines, ('  %-10s %s'):format(label, tostring(value)))
    end
  end
  add('model', status.model)
  add('backend', status.backend)
  add('device', status.device)
  add('dtype', status.dtype)
  if type(status.lastLatencyMs) == 'number' then
    add('latency', ('%d ms (last completion)'):format(status.lastLatencyMs))
  end
  add('buffer', on and 'on' or why)
  local minutes = M.snooze_minutes_left(status)
  if minutes then
    add('snoozed', ('%d more minute(s)'):format(minutes))
  end
  return table.concat(lines, '\n')
end

return M
