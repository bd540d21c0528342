-- Drives real Neovims (the plugin set up by init.lua) over RPC, keys typed with nvim_input:
--   CODEGEN_LSP_TEST_CASE=<case.json> nvim --clean -l editors/nvim/test/run.lua     (pytest writes the case)
-- 1. ghost text equals the CLI's completion; <Tab> inserts it; <M-Right> takes a word (<M-C-Right> a line)
--    and <Tab> the rest; <C-]> dismisses;
-- 2. with ghost text off, <C-x><C-o> <C-y> inserts the `textDocument/completion` item.
-- Prints one line per check; exits non-zero on the first failure.
local here = vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2))
local case = vim.json.decode(table.concat(vim.fn.readfile(vim.env.CODEGEN_LSP_TEST_CASE), '\n'))
local started = vim.uv.hrtime()
local chan

local function log(fmt, ...)
  io.stdout:write(('[%6.2fs] '):format((vim.uv.hrtime() - started) / 1e9) .. fmt:format(...) .. '\n')
  io.stdout:flush()
end

local function start_editor(inline)
  chan = vim.fn.jobstart({ vim.v.progpath, '--embed', '--headless', '--clean', '-u', here .. '/init.lua' }, {
    rpc = true,
    env = { CODEGEN_LSP_TEST_CASE = vim.env.CODEGEN_LSP_TEST_CASE, CODEGEN_LSP_TEST_INLINE = inline and '1' or '0' },
  })
  assert(chan > 0, 'could not start nvim --embed')
end

local function stop_editor()
  pcall(vim.rpcnotify, chan, 'nvim_command', 'qall!')
  if vim.fn.jobwait({ chan }, 10000)[1] == -1 then
    vim.fn.jobstop(chan)
  end
end

local function lua(code, ...)
  return vim.rpcrequest(chan, 'nvim_exec_lua', code, { ... })
end

local function input(keys)
  vim.rpcrequest(chan, 'nvim_input', keys)
end

--- Run `code` in the editor until `ok(value)`, or fail after `seconds`.
local function wait_for(what, seconds, code, ok)
  local deadline = vim.uv.hrtime() + seconds * 1e9
  local value
  while vim.uv.hrtime() < deadline do
    value = lua(code)
    if ok(value) then
      return value
    end
    vim.wait(20)
  end
  error(('timed out after %ds waiting for %s; last value: %s'):format(seconds, what, vim.inspect(value)))
end

local BUFFER_TEXT = [[return table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, true), '\n') .. '\n']]
local GHOST = [[return require('codegen_lsp').ghost_text() or vim.NIL]]

local function check(what, got, want)
  if got ~= want then
    error(('%s:\n  got:  %s\n  want: %s'):format(what, vim.inspect(got), vim.inspect(want)))
  end
  log('ok: %s', what)
end

local function open_and_attach()
  lua('vim.cmd.edit(...)', case.path)
  check('the buffer holds the file', lua(BUFFER_TEXT), case.text)
  wait_for('the server to attach', 30, [[return #vim.lsp.get_clients({ bufnr = 0, name = 'codegen_lsp' })]],
    function(n) return n == 1 end)
  log('attached (%s)', lua([[return vim.lsp.get_clients({ bufnr = 0 })[1].offset_encoding]]))
end

--- Back to the file's text, then Insert mode at the end of the case's line (as `A` does when typing).
local function append_at_case_line()
  input('<Esc>')
  wait_for('Normal mode', 5, [[return vim.api.nvim_get_mode().mode]], function(m) return m == 'n' end)
  if lua(BUFFER_TEXT) ~= case.text then
    lua('vim.api.nvim_buf_set_lines(0, 0, -1, true, ...)', vim.split(case.text:sub(1, -2), '\n', { plain = true }))
  end
  lua('vim.api.nvim_win_set_cursor(0, { ... })', case.line + 1, 0)
  input('A')
end

local function wait_ghost(what)
  return wait_for(what, 60, GHOST, function(v) return v ~= vim.NIL end)
end

local function ghost_session()
  start_editor(true)
  open_and_attach()
  check('no completion menu offered to a ghost text client',
    lua([[return vim.lsp.get_clients({ bufnr = 0 })[1].server_capabilities.completionProvider == nil]]), true)
  append_at_case_line()
  check('ghost text equals the CLI completion', wait_ghost('ghost text'), case.completion)
  local at = lua([[
    local m = vim.api.nvim_buf_get_extmarks(0, require('codegen_lsp.inline').namespace, 0, -1, {})[1]
    local c = vim.api.nvim_win_get_cursor(0)
    return { m[2] == c[1] - 1, m[3] == c[2] }]])
  check('the ghost text sits at the cursor', vim.inspect(at), vim.inspect({ true, true }))

  input('<Tab>')
  wait_for('<Tab> to accept', 10, BUFFER_TEXT, function(t) return t == case.expected_text end)
  check('<Tab> inserted the completion', lua(BUFFER_TEXT), case.expected_text)
  check('still in Insert mode', lua([[return vim.api.nvim_get_mode().mode]]), 'i')
  check('the cursor is after the inserted text',
    lua([[return vim.api.nvim_win_get_cursor(0)[2] == #vim.api.nvim_get_current_line()]]), true)
  check('no ghost text left', lua(GHOST), vim.NIL)

  -- Accept a word, then the rest.
  append_at_case_line()
  wait_ghost('ghost text again')
  input('<M-Right>')
  local word = case.completion:match('^%s*[%w_]+') or case.completion:match('^%s*[^%s%w_]+')
  wait_for('<M-Right> to accept a word', 10, BUFFER_TEXT, function(t) return t ~= case.text end)
  -- (the case's cursor is at the end of the file's last line)
  check('<M-Right> inserted the first word', lua(BUFFER_TEXT), case.text:sub(1, -2) .. word .. '\n')
  check('the rest stays a suggestion', lua(GHOST), case.completion:sub(#word + 1))
  input('<Tab>')
  wait_for('<Tab> to accept the rest', 10, BUFFER_TEXT, function(t) return t == case.expected_text end)
  log('ok: word + rest = the completion')

  -- Accept a line, then the rest (when the completion has more than one line).
  local first_line = case.completion:match('^[^\n]+')
  if first_line and first_line ~= case.completion then
    append_at_case_line()
    wait_ghost('ghost text for a line')
    input('<M-C-Right>')
    wait_for('<M-C-Right> to accept a line', 10, BUFFER_TEXT, function(t) return t ~= case.text end)
    check('<M-C-Right> inserted the first line', lua(BUFFER_TEXT), case.text:sub(1, -2) .. first_line .. '\n')
    check('the other lines stay a suggestion', lua(GHOST), case.completion:sub(#first_line + 1))
    input('<Tab>')
    wait_for('<Tab> to accept the other lines', 10, BUFFER_TEXT, function(t) return t == case.expected_text end)
    log('ok: line + rest = the completion')
  end

  -- Dismiss.
  append_at_case_line()
  wait_ghost('ghost text once more')
  input('<C-]>')
  wait_for('<C-]> to dismiss', 5, GHOST, function(v) return v == vim.NIL end)
  check('<C-]> left the buffer as it was', lua(BUFFER_TEXT), case.text)
  stop_editor()
end

local function completion_session()
  start_editor(false)
  open_and_attach()
  check('omnifunc', lua([[return vim.bo.omnifunc]]), 'v:lua.vim.lsp.omnifunc')
  append_at_case_line()
  input('<C-x><C-o>')
  local menu = wait_for('the completion menu', 60, [[
    if vim.fn.pumvisible() == 0 then return vim.NIL end
    return vim.fn.complete_info({ 'items', 'selected' })]], function(v) return v ~= vim.NIL end)
  log('menu: %d item(s), first %s', #menu.items, vim.inspect(menu.items[1].abbr))
  input('<C-y>')
  wait_for('<C-y> to insert the item', 10, BUFFER_TEXT, function(t) return t == case.expected_text end)
  check('the completion item inserted the completion', lua(BUFFER_TEXT), case.expected_text)
  check('no ghost text with inline off', lua(GHOST), vim.NIL)
  stop_editor()
end

local function run()
  ghost_session()
  completion_session()
end

local ok, err = xpcall(run, debug.traceback)
if not ok then
  io.stdout:write('FAILED: ' .. tostring(err) .. '\n')
  pcall(function()
    local lines = vim.fn.readfile(lua([[return vim.lsp.get_log_path()]]))
    io.stdout:write('--- Neovim LSP log (tail) ---\n' .. table.concat(vim.list_slice(lines, math.max(1, #lines - 60)), '\n') .. '\n')
  end)
  pcall(stop_editor)
end
log(ok and 'PASSED' or 'FAILED')
os.exit(ok and 0 or 1)
