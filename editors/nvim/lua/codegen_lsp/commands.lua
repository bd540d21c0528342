-- `:CodegenLsp {status|toggle|enable|disable|snooze|health|suggest|restart}`. On / off belongs to the server
-- (`workspace/executeCommand` codegenLsp.setEnabled / codegenLsp.toggle); the answer is its new status, which
-- the statusline shows (status.lua).
local compat = require('codegen_lsp.compat')
local status = require('codegen_lsp.status')

local api = vim.api

local M = {}

local SET_ENABLED, TOGGLE = 'codegenLsp.setEnabled', 'codegenLsp.toggle'
local SNOOZE_MINUTES = 30
local SCOPES = { 'buffer', 'language' }

local function plugin()
  return require('codegen_lsp')
end

local function say(text, level)
  vim.notify(text, level or vim.log.levels.INFO, { title = 'codegen-lsp' })
end

--- The clients a switch goes to: the buffer's, else every running one of ours.
local function clients_for(bufnr)
  local clients = plugin().clients(bufnr)
  return #clients > 0 and clients or plugin().clients()
end

local function execute(bufnr, command, argument)
  local clients = clients_for(bufnr)
  if #clients == 0 then
    say('codegen-lsp is not running (open a file of a served filetype first)', vim.log.levels.WARN)
    return
  end
  for _, client in ipairs(clients) do
    local params = { command = command, arguments = argument and { argument } or nil }
    compat.request(client, 'workspace/executeCommand', params, function(err, result)
      if err then
        say(('%s: %s'):format(command, err.message or vim.inspect(err)), vim.log.levels.ERROR)
      else
        status.update(client.id, result)
      end
    end, bufnr)
  end
end

--- The argument of setEnabled for a scope ('buffer', 'language' or nil: everywhere).
local function switch(bufnr, enabled, scope)
  local argument = { enabled = enabled }
  if scope == 'buffer' then
    argument.uri = vim.uri_from_bufnr(bufnr)
  elseif scope == 'language' then
    argument.languageId = vim.bo[bufnr].filetype
  elseif scope ~= nil then
    error(('unknown scope %q (buffer or language)'):format(scope), 0)
  end
  return argument
end

M.subcommands = {
  status = function(bufnr)
    say(status.describe(bufnr))
  end,
  toggle = function(bufnr, scope)
    if scope == nil then
      execute(bufnr, TOGGLE)
    else
      execute(bufnr, SET_ENABLED, switch(bufnr, not status.enabled_for(bufnr), scope))
    end
  end,
  enable = function(bufnr, scope)
    execute(bufnr, SET_ENABLED, switch(bufnr, true, scope))
  end,
  disable = function(bufnr, scope)
    execute(bufnr, SET_ENABLED, switch(bufnr, false, scope))
  end,
  snooze = function(bufnr, minutes)
    local n = tonumber(minutes or SNOOZE_MINUTES)
    if not n or n <= 0 then
      error(('snooze takes a number of minutes, not %q'):format(minutes), 0)
    end
    execute(bufnr, SET_ENABLED, { enabled = false, snoozeMinutes = n })
  end,
  health = function()
    vim.cmd('checkhealth codegen_lsp')
  end,
  suggest = function()
    plugin().suggest()
  end,
  restart = function()
    plugin().restart()
  end,
}

local function run(args)
  local name, argument = args.fargs[1] or 'status', args.fargs[2]
  local sub = M.subcommands[name]
  if not sub then
    say(('unknown subcommand %q; one of: %s'):format(name, table.concat(M.names(), ', ')), vim.log.levels.ERROR)
    return
  end
  local ok, err = pcall(sub, api.nvim_get_current_buf(), argument)
  if not ok then
    say(tostring(err), vim.log.levels.ERROR)
  end
end

function M.names()
  local names = vim.tbl_keys(M.subcommands)
  table.sort(names)
  return names
end

local function complete(arglead, cmdline)
  local words = vim.split(cmdline, '%s+', { trimempty = true })
  local typing_first = #words == 1 or (#words == 2 and arglead ~= '')
  local candidates = typing_first and M.names() or {}
  if not typing_first and vim.tbl_contains({ 'toggle', 'enable', 'disable' }, words[2]) then
    candidates = SCOPES
  end
  return vim.tbl_filter(function(c)
    return c:sub(1, #arglead) == arglead
  end, candidates)
end

function M.create()
  api.nvim_create_user_command('CodegenLsp', run, {
    nargs = '*',
    complete = complete,
    desc = 'codegen-lsp: status, toggle, enable / disable [buffer|language], snooze [minutes], health',
  })
  api.nvim_create_user_command('CodegenLspRestart', M.subcommands.restart, { desc = 'Restart the codegen-lsp server' })
  api.nvim_create_user_command('CodegenLspSuggest', M.subcommands.suggest, { desc = 'Ask codegen-lsp for a suggestion now' })
end

return M
