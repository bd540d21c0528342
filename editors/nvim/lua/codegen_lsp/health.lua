-- `:checkhealth codegen_lsp`: this Neovim, the server's executable, `codegen-lsp doctor` (Python, torch,
-- device, dtype, where the model comes from, a short speed test; its OK / WARN / FAIL lines shown as ok / warn /
-- error), and the clients running with their status.
local status = require('codegen_lsp.status')

local health = vim.health

local M = {}

local function plugin()
  return require('codegen_lsp')
end

local function check_neovim()
  health.start('codegen-lsp: Neovim')
  local version = tostring(vim.version())
  if vim.fn.has('nvim-0.10') == 1 then
    health.ok('Neovim ' .. version)
  else
    health.error('Neovim ' .. version .. ' is too old', { 'codegen-lsp needs Neovim 0.10 or later' })
  end
  local inline = plugin().config.inline
  local native, why = require('codegen_lsp.native').can_serve(inline)
  if not inline.enabled then
    health.info('ghost text off (inline.enabled = false): completions come through the completion menu')
  elseif native then
    health.ok("ghost text: Neovim's own vim.lsp.inline_completion")
  else
    health.ok("ghost text: the plugin's own (" .. why .. ')')
  end
end

--- `cmd`'s executable, found: true, else false (and said why).
local function check_executable()
  health.start('codegen-lsp: server')
  local cmd = plugin().config.cmd
  local exe = type(cmd) == 'table' and cmd[1] or nil
  if type(exe) ~= 'string' then
    health.error('`cmd` is not a list starting with an executable: ' .. vim.inspect(cmd))
    return false
  end
  local path = vim.fn.exepath(exe)
  if path == '' then
    health.error(('`%s` (cmd[1]) is not found on PATH'):format(exe), {
      'pip install codegen-lsp (or pip install -e . in a clone), in the environment Neovim runs in',
      'or set cmd = { "/path/to/codegen-lsp", "serve", "--stdio" } in setup()',
    })
    return false
  end
  health.ok(('server: %s (%s)'):format(table.concat(cmd, ' '), path))
  return true
end

local REPORTERS = { OK = health.ok, WARN = health.warn, FAIL = health.error }

--- Each doctor line as ok / warn / error by its first word; other lines as info.
function M.report(lines)
  for _, line in ipairs(lines) do
    local word, rest = line:match('^(%u+)%s+(.*)$')
    local report = word and REPORTERS[word]
    if report then
      report(rest)
    elseif line:match('%S') then
      health.info(line)
    end
  end
end

local function check_doctor()
  local command = plugin().doctor_cmd()
  health.start('codegen-lsp: doctor (' .. table.concat(command, ' ') .. ')')
  local timeout_ms = plugin().config.health.timeout_ms
  local ok, done = pcall(function()
    return vim.system(command, { text = true, timeout = timeout_ms }):wait()
  end)
  if not ok then
    health.error('could not run the doctor: ' .. tostring(done))
    return
  end
  M.report(vim.split(done.stdout or '', '\n', { plain = true }))
  if done.code == 0 then
    return
  end
  local err = vim.trim(done.stderr or '')
  if done.signal ~= 0 and done.signal ~= nil then
    health.error(('the doctor was stopped after %d s (signal %d)'):format(timeout_ms / 1000, done.signal))
  else
    health.error(('the doctor says the server cannot complete (exit %d)'):format(done.code), err ~= '' and {
      err:sub(-2000),
    } or nil)
  end
end

local function check_clients()
  health.start('codegen-lsp: clients')
  local clients = plugin().clients()
  if #clients == 0 then
    health.warn('no codegen-lsp client is running', {
      'open a file of a served filetype: ' .. table.concat(plugin().config.filetypes, ', '),
    })
    return
  end
  for _, client in ipairs(clients) do
    local buffers = vim.tbl_keys(client.attached_buffers or {})
    health.ok(('client %d (root %s) attached to %d buffer(s)'):format(client.id, client.root_dir or '-', #buffers))
    local bufnr = buffers[1]
    if bufnr then
      for _, line in ipairs(vim.split(status.describe(bufnr), '\n')) do
        health.info(vim.trim(line))
      end
    end
  end
end

function M.check()
  check_neovim()
  if check_executable() then
    check_doctor()
  end
  check_clients()
end

return M
