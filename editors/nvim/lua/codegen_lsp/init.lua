-- codegen-lsp for Neovim: starts the server for the buffers of its filetypes (C, C++, Go, Java, JavaScript,
-- Python), shows its inline completions as ghost text, renders its status (statusline, `:CodegenLsp`), and
-- wires its `textDocument/completion` items into Neovim's LSP completion.
--
--   require('codegen_lsp').setup({ settings = { model = 'Salesforce/codegen-350M-mono' } })
--   vim.o.statusline = '%f %= %{v:lua.require("codegen_lsp").status()} '
local compat = require('codegen_lsp.compat')
local defaults = require('codegen_lsp.config').defaults
local status = require('codegen_lsp.status')

local api = vim.api

local M = {}

M.name = 'codegen_lsp'

---@type table
M.config = vim.deepcopy(defaults)

local function is_list(t)
  return next(t) ~= nil and compat.islist(t)
end

--- Deep merge where lists (cmd, filetypes, patterns) are values, replaced whole.
local function merge(base, override)
  if override == nil then
    return base
  end
  if type(base) ~= 'table' or type(override) ~= 'table' or is_list(base) or is_list(override) then
    return override
  end
  local out = vim.deepcopy(base)
  for key, value in pairs(override) do
    out[key] = merge(base[key], value)
  end
  return out
end

local function use_native_inline()
  return (require('codegen_lsp.native').can_serve(M.config.inline))
end

---@type table<integer, true> clients whose status was asked for
local asked = {}

local function on_attach(client, bufnr)
  if not asked[client.id] then
    asked[client.id] = true
    status.refresh(client)
  end
  local inline = M.config.inline
  if inline.enabled then
    if use_native_inline() then
      require('codegen_lsp.native').attach(bufnr, inline)
    else
      require('codegen_lsp.inline').attach(client, bufnr, inline)
    end
  end
  require('codegen_lsp.completion').attach(client, bufnr, M.config.completion)
  if M.config.lsp.on_attach then
    M.config.lsp.on_attach(client, bufnr)
  end
end

local function on_exit(code, signal, client_id)
  asked[client_id] = nil
  status.forget(client_id)
  if M.config.lsp.on_exit then
    M.config.lsp.on_exit(code, signal, client_id)
  end
end

local function capabilities()
  local caps = vim.lsp.protocol.make_client_capabilities()
  if M.config.inline.enabled and not use_native_inline() then
    -- This plugin is the inline completion client on Neovim < 0.12. (codegen-lsp then leaves the
    -- `textDocument/completion` menu empty, so suggestions do not show twice.)
    caps.textDocument.inlineCompletion = { dynamicRegistration = false }
  end
  return merge(caps, M.config.lsp.capabilities or {})
end

--- The vim.lsp config (minus root_dir) this plugin starts the server with.
function M.lsp_config()
  local settings = M.config.settings
  local cfg = merge(M.config.lsp, {
    name = M.name,
    cmd = M.config.cmd,
    filetypes = M.config.filetypes,
    root_markers = M.config.root_markers,
    capabilities = capabilities(),
    on_attach = on_attach,
    on_exit = on_exit,
    handlers = merge({ [status.METHOD] = status.handler }, M.config.lsp.handlers or {}),
  })
  if next(settings) ~= nil then -- an empty Lua table would go out as a JSON list
    cfg.init_options = settings
    cfg.settings = { codegenLsp = settings }
  end
  return cfg
end

local function start_legacy(bufnr)
  local cfg = M.lsp_config()
  local root = vim.fs.root and vim.fs.root(bufnr, cfg.root_markers) or nil
  cfg.root_dir = root or vim.fs.dirname(api.nvim_buf_get_name(bufnr))
  cfg.root_markers, cfg.filetypes = nil, nil
  vim.lsp.start(cfg, { bufnr = bufnr })
end

--- Start the server for every loaded buffer of a served filetype (Neovim without vim.lsp.enable).
local function start_legacy_in_open_buffers()
  for _, bufnr in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(bufnr) and vim.tbl_contains(M.config.filetypes, vim.bo[bufnr].filetype) then
      start_legacy(bufnr)
    end
  end
end

--- The server's new status: ghost text off where it is switched off (Neovim's own client too).
local function on_status()
  if not M.config.inline.enabled then
    return
  end
  if use_native_inline() then
    for _, client in ipairs(M.clients()) do
      for bufnr in pairs(client.attached_buffers or {}) do
        require('codegen_lsp.native').on_status(bufnr)
      end
    end
  else
    require('codegen_lsp.inline').on_status()
  end
end

---@param opts table? see lua/codegen_lsp/config.lua
function M.setup(opts)
  M.config = merge(defaults, opts or {})
  local group = api.nvim_create_augroup('codegen_lsp', { clear = true })
  api.nvim_create_autocmd('User', { group = group, pattern = 'CodegenLspStatus', callback = on_status })
  api.nvim_create_autocmd('LspDetach', {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == M.name then
        require('codegen_lsp.inline').detach(args.buf, client.id)
        require('codegen_lsp.completion').detach(args.buf)
      end
    end,
  })
  if vim.lsp.config and vim.lsp.enable then -- 0.11+
    vim.lsp.config(M.name, M.lsp_config())
    vim.lsp.enable(M.name)
  else -- 0.10
    api.nvim_create_autocmd('FileType', {
      group = group,
      pattern = M.config.filetypes,
      callback = function(args)
        start_legacy(args.buf)
      end,
    })
    start_legacy_in_open_buffers()
  end
  require('codegen_lsp.commands').create()
end

---@return vim.lsp.Client[]
function M.clients(bufnr)
  return vim.lsp.get_clients({ name = M.name, bufnr = bufnr })
end

--- Send new server settings (merged over the current ones) to running servers and future ones.
function M.set_settings(settings)
  M.config.settings = merge(M.config.settings, settings)
  if vim.lsp.config then
    vim.lsp.config(M.name, M.lsp_config())
  end
  for _, client in ipairs(M.clients()) do
    client.settings = { codegenLsp = M.config.settings }
    compat.notify(client, 'workspace/didChangeConfiguration', { settings = client.settings })
  end
end

function M.restart()
  for _, client in ipairs(M.clients()) do
    compat.stop(client)
  end
  vim.defer_fn(function()
    if vim.lsp.enable then
      vim.lsp.enable(M.name)
    else
      start_legacy_in_open_buffers()
    end
  end, 500)
end

-- Actions for your own mappings; each returns true when it did something (else map your fallback).
function M.accept()
  return require('codegen_lsp.inline').accept(0, 'all')
end
function M.accept_word()
  return require('codegen_lsp.inline').accept(0, 'word')
end
function M.accept_line()
  return require('codegen_lsp.inline').accept(0, 'line')
end
function M.dismiss()
  return require('codegen_lsp.inline').dismiss(0)
end
--- Ask for a suggestion now (never accepts one). Returns true when a request went out.
function M.suggest()
  if use_native_inline() then
    return require('codegen_lsp.native').suggest(api.nvim_get_current_buf())
  end
  return require('codegen_lsp.inline').request(0, true)
end
function M.next()
  return require('codegen_lsp.inline').cycle(0, 1)
end
function M.prev()
  return require('codegen_lsp.inline').cycle(0, -1)
end

--- A short text for statuslines (lualine: `sections = { lualine_x = { require('codegen_lsp').status } }`):
--- '' where no codegen-lsp client is attached, else `CodeGen ready`, `CodeGen loading 42%`, `CodeGen off`, ...
--- It changes with the server's `codegenLsp/status` (a `User CodegenLspStatus` autocmd fires then).
--- (lualine calls a component with its own object first: anything but a buffer number is the current one.)
function M.status(bufnr)
  return status.short(type(bufnr) == 'number' and bufnr or 0)
end

--- `codegen-lsp doctor` as `:checkhealth codegen_lsp` runs it.
function M.doctor_cmd()
  if M.config.health.doctor_cmd then
    return M.config.health.doctor_cmd
  end
  local command = {}
  for _, arg in ipairs(M.config.cmd) do
    if arg == 'serve' or arg:sub(1, 2) == '--' then
      break -- the subcommand and its options: doctor replaces them
    end
    table.insert(command, arg)
  end
  table.insert(command, 'doctor')
  if next(M.config.settings) ~= nil then -- the settings the server gets, as it gets them
    vim.list_extend(command, { '--settings', vim.json.encode(M.config.settings) })
  end
  return command
end
--- The ghost text showing in the current buffer (as displayed), or nil.
function M.ghost_text()
  return require('codegen_lsp.inline').ghost_text(0)
end

return M
