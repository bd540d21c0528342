-- Drives real Neovims (the plugin set up by init.lua) over RPC, keys typed with nvim_input:
--   CODEGEN_LSP_TEST_CASE=<case.json> CODEGEN_LSP_TEST_SESSIONS=ghost,completion \
--     nvim --clean -l editors/nvim/test/run.lua                                      (pytest writes the case)
-- ghost:      ghost text equals the CLI's completion; <Tab> inserts it; <M-Right> takes a word (<M-C-Right> a
--             line) and <Tab> the rest; <C-]> dismisses;
-- completion: with ghost text off, <C-x><C-o> <C-y> inserts the `textDocument/completion` item;
-- keys:       (scripted server) typing the ghost's next character keeps it, trimmed, in the same event; <M-]>
--             fetches the alternatives and shows the second, <M-[> goes back; the person's own <Tab> mapping
--             runs where no ghost shows; no ghost while the popup menu is open, and <Tab> there is theirs;
-- status:     the statusline goes loading -> ready; :CodegenLsp disable -> 'CodeGen off' and no request
--             reaches the server while typing (its own count), enable -> ghost text again; per buffer; snooze;
--             toggle; <M-]> gets the server's alternatives; :checkhealth codegen_lsp;
-- pylsp:      pylsp beside codegen-lsp in one buffer: hover from pylsp, ghost text from codegen-lsp.
-- Prints one line per check; exits non-zero on the first failure.
local here = vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2))
local case = vim.json.decode(table.concat(vim.fn.readfile(vim.env.CODEGEN_LSP_TEST_CASE), '\n'))
local started = vim.uv.hrtime()
local chan

local function log(fmt, ...)
  io.stdout:write(('[%6.2fs] '):format((vim.uv.hrtime() - started) / 1e9) .. fmt:format(...) .. '\n')
  io.stdout:flush()
end

local function start_editor(inline, env)
  chan = vim.fn.jobstart({ vim.v.progpath, '--embed', '--headless', '--clean', '-u', here .. '/init.lua' }, {
    rpc = true,
    env = vim.tbl_extend('force', {
      CODEGEN_LSP_TEST_CASE = vim.env.CODEGEN_LSP_TEST_CASE,
      CODEGEN_LSP_TEST_INLINE = inline and '1' or '0',
    }, env or {}),
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

local function open_and_attach(seconds)
  lua('vim.cmd.edit(...)', case.path)
  check('the buffer holds the file', lua(BUFFER_TEXT), case.text)
  wait_for('the server to attach', seconds or 30, [[return #vim.lsp.get_clients({ bufnr = 0, name = 'codegen_lsp' })]],
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
  check('<Tab> inserted the completion (the person\'s own <Tab> mapping stays behind it)', lua(BUFFER_TEXT),
    case.expected_text)
  check('still in Insert mode', lua([[return vim.api.nvim_get_mode().mode]]), 'i')
  check('the cursor is after the inserted text',
    lua([[return vim.api.nvim_win_get_cursor(0)[2] == #vim.api.nvim_get_current_line()]]), true)
  check('any ghost text now is a new suggestion at the cursor', lua([[
    local m = vim.api.nvim_buf_get_extmarks(0, require('codegen_lsp.inline').namespace, 0, -1, {})[1]
    local c = vim.api.nvim_win_get_cursor(0)
    return m == nil or (m[2] == c[1] - 1 and m[3] == c[2])]]), true)

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

local STATUS = [[return require('codegen_lsp').status()]]

local function command(cmd)
  lua('vim.cmd(...)', cmd)
end

local function wait_status(want, seconds)
  return wait_for('the status ' .. want, seconds or 30, STATUS, function(v) return v == want end)
end

local function line_now()
  return lua([[return vim.api.nvim_get_current_line()]])
end

local function keys_session()
  local alternative = case.alternative
  start_editor(true)
  open_and_attach()
  append_at_case_line()
  check('ghost text', wait_ghost('ghost text'), case.completion)

  -- Typing the ghost's next character: the ghost is trimmed in the very event of the edit (before any answer
  -- from the server could come), so it never disappears in between.
  lua([[
    _G.seen_at_edit = {}
    vim.api.nvim_create_autocmd('TextChangedI', { buffer = 0, callback = function()
      table.insert(_G.seen_at_edit, require('codegen_lsp').ghost_text() or '(none)')
    end })]])
  input(case.completion:sub(1, 1))
  wait_for('the typed character', 10, [[return #_G.seen_at_edit]], function(n) return n >= 1 end)
  check('typing the ghost\'s next character keeps the rest showing, at once',
    lua([[return _G.seen_at_edit[1] ]]), case.completion:sub(2))

  -- Cycling: the first <M-]> fetches the alternatives (numCandidates > 1) and shows the second.
  append_at_case_line()
  check('ghost text before cycling', wait_ghost('ghost text'), case.completion)
  input('<M-]>')
  wait_for('<M-]> to show the second candidate', 10, GHOST, function(v) return v == alternative end)
  log('ok: <M-]> shows the second candidate')
  input('<M-[>')
  wait_for('<M-[> to go back to the first', 10, GHOST, function(v) return v == case.completion end)
  log('ok: <M-[> shows the first again')
  check('cycling left the buffer as it was', lua(BUFFER_TEXT), case.text)

  -- The person's own <Tab> where no ghost shows.
  input('<C-]>')
  wait_for('<C-]> to dismiss', 5, GHOST, function(v) return v == vim.NIL end)
  input('<Tab>')
  wait_for('<Tab> with no ghost text', 10, [[return vim.api.nvim_get_current_line()]],
    function(l) return l:sub(-4) == 'TAB!' end)
  log('ok: <Tab> with no ghost text ran the person\'s own mapping (%q)', line_now())

  -- The popup menu: no ghost text under it, none asked for; <Tab> in it is the person's (next entry).
  append_at_case_line()
  wait_ghost('ghost text before the menu')
  input('<C-n>')
  wait_for('the popup menu', 10, [[return vim.fn.pumvisible()]], function(v) return v == 1 end)
  check('no ghost text while the popup menu is open', lua(GHOST), vim.NIL)
  check('no request while the popup menu is open', lua([[return require('codegen_lsp').suggest()]]), false)
  local before = lua([[return vim.fn.complete_info({ 'selected' }).selected]])
  input('<Tab>')
  wait_for('<Tab> to select the next menu entry', 10, [[return vim.fn.complete_info({ 'selected' }).selected]],
    function(v) return v ~= before end)
  check('still no ghost text under the menu', lua(GHOST), vim.NIL)
  input('<C-e>')
  wait_for('the menu to close', 10, [[return vim.fn.pumvisible()]], function(v) return v == 0 end)
  input(' ') -- type on: ghost text again
  wait_ghost('ghost text after the menu closed')
  log('ok: ghost text again once the menu closed')
  stop_editor()
end

local SWITCHED_OFF = [[
  local client = vim.lsp.get_clients({ bufnr = 0, name = 'codegen_lsp' })[1]
  local answer = client:request_sync('workspace/executeCommand', { command = 'codegenLsp.debugState' }, 10000, 0)
  return answer.result.stats.switched_off or 0]]

local function status_session()
  start_editor(true, { CODEGEN_LSP_DEBUG = '1' })
  open_and_attach()
  wait_status('CodeGen ready', 60)
  local history = lua([[return _G.status_history]])
  log('statusline history: %s', table.concat(history, ' -> '))
  local loading, ready
  for i, text in ipairs(history) do
    loading = loading or (text:match('^CodeGen loading') and i)
    ready = ready or (text == 'CodeGen ready' and i)
  end
  check('the statusline said loading, then ready', loading ~= nil and ready ~= nil and loading < ready, true)
  check('the statusline shows it', lua([[return vim.api.nvim_eval_statusline(vim.o.statusline, {}).str]])
    :match('CodeGen ready$') ~= nil, true)
  command('CodegenLsp status')
  local said = lua([[return vim.fn.execute('messages')]])
  check(':CodegenLsp status names the model', said:find(case.settings.model, 1, true) ~= nil, true)

  -- Off: the statusline says so, and typing sends the server nothing.
  command('CodegenLsp disable')
  wait_status('CodeGen off')
  append_at_case_line()
  input(' x')
  wait_for('the typed text', 10, [[return vim.api.nvim_get_current_line()]], function(l) return l:sub(-2) == ' x' end)
  lua('vim.wait(200)') -- the plugin's own (0 ms) timer would have asked by now
  check('no ghost text while off', lua(GHOST), vim.NIL)
  check('no request reached the server while off (its own count)', lua(SWITCHED_OFF), 0)
  -- (the count counts: a request sent while off is counted)
  lua([[
    local client = vim.lsp.get_clients({ bufnr = 0, name = 'codegen_lsp' })[1]
    local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
    params.context = { triggerKind = 1 }
    client:request_sync('textDocument/inlineCompletion', params, 10000, 0)]])
  check('a request sent anyway is counted', lua(SWITCHED_OFF), 1)

  -- On: ghost text again.
  command('CodegenLsp enable')
  wait_status('CodeGen ready')
  append_at_case_line()
  check('ghost text again once enabled', wait_ghost('ghost text'), case.completion)

  -- Alternatives from the real server: the first <M-]> asks for numCandidates > 1 and shows another.
  local first = lua(GHOST)
  input('<M-]>')
  local second = wait_for('<M-]> to show another candidate', 60, GHOST, function(v) return v ~= first end)
  log('ok: <M-]> showed another candidate from the server: %s', vim.inspect(second))

  -- This buffer only; a snooze; toggle.
  command('CodegenLsp disable buffer')
  wait_status('CodeGen off')
  check('the buffer is off in the server\'s status', lua([[
    return vim.tbl_contains(vim.lsp.get_clients({ bufnr = 0, name = 'codegen_lsp' })[1] and
      require('codegen_lsp.status').get(0).disabledUris, vim.uri_from_bufnr(0))]]), true)
  command('CodegenLsp enable buffer')
  wait_status('CodeGen ready')
  command('CodegenLsp snooze 5')
  wait_status('CodeGen snoozed 5m')
  command('CodegenLsp toggle')
  wait_status('CodeGen ready')
  command('CodegenLsp toggle')
  wait_status('CodeGen off')
  command('CodegenLsp toggle')
  wait_status('CodeGen ready')
  log('ok: per buffer, snooze and toggle show in the statusline')

  -- :checkhealth codegen_lsp
  input('<Esc>')
  command('checkhealth codegen_lsp')
  local report = table.concat(lua([[return vim.api.nvim_buf_get_lines(0, 0, -1, false)]]), '\n')
  log('checkhealth:\n%s', report)
  check(':checkhealth: Neovim OK', report:find('OK Neovim', 1, true) ~= nil, true)
  check(':checkhealth: server found', report:find('OK server:', 1, true) ~= nil, true)
  check(':checkhealth: the doctor\'s OK lines', select(2, report:gsub('\n%- ✅ OK', '')) >= 4, true)
  check(':checkhealth: the client attached', report:find('OK client %d+ %(root') ~= nil, true)
  check(':checkhealth: no ERROR', report:find('ERROR', 1, true), nil)
  stop_editor()
end

local function pylsp_session()
  start_editor(true, { CODEGEN_LSP_TEST_PYLSP = '1' })
  open_and_attach()
  wait_for('pylsp to attach', 30, [[return #vim.lsp.get_clients({ bufnr = 0, name = 'pylsp' })]],
    function(n) return n == 1 end)
  -- Hover on the first line's first name: pylsp answers (codegen-lsp offers no hover).
  local hover = lua([[
    local params = vim.lsp.util.make_position_params(0, 'utf-16')
    params.position = { line = 0, character = 4 }
    local answers = vim.lsp.buf_request_sync(0, 'textDocument/hover', params, 20000) or {}
    local out = {}
    for id, answer in pairs(answers) do
      local c = answer.result and answer.result.contents
      out[vim.lsp.get_client_by_id(id).name] = c and vim.inspect(c) or vim.NIL
    end
    return out]])
  log('hover answers: %s', vim.inspect(hover))
  check('pylsp answers hover', type(hover.pylsp) == 'string' and #hover.pylsp > 2, true)
  append_at_case_line()
  check('ghost text from codegen-lsp beside pylsp equals the CLI completion', wait_ghost('ghost text'), case.completion)
  check('both still attached', lua([[return #vim.lsp.get_clients({ bufnr = 0 })]]), 2)
  stop_editor()
end

local SESSIONS = {
  ghost = ghost_session,
  completion = completion_session,
  keys = keys_session,
  status = status_session,
  pylsp = pylsp_session,
}

local function run()
  for name in (vim.env.CODEGEN_LSP_TEST_SESSIONS or 'ghost,completion'):gmatch('[^,]+') do
    log('-- session %s', name)
    SESSIONS[name]()
  end
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
