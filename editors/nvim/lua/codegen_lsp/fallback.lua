-- The person's own Insert-mode mapping of a key the plugin maps (as copilot.vim does for <Tab>): captured with
-- maparg() before the plugin maps the key in a buffer, and run when the plugin has nothing to do with the key
-- (no ghost text, or a completion menu open). With no mapping of their own the key does what it does in Vim.
local api = vim.api

local M = {}

local function termcodes(keys)
  return api.nvim_replace_termcodes(keys, true, false, true)
end

--- The mapping of `lhs` in Insert mode that `bufnr` sees now (buffer-local first, then global), or nil.
--- Our own mappings (desc 'CodeGen LSP: ...') are not the person's.
function M.capture(bufnr, lhs)
  local map = api.nvim_buf_call(bufnr, function()
    return vim.fn.maparg(lhs, 'i', false, true)
  end)
  if vim.tbl_isempty(map) or (map.desc or ''):find('^CodeGen LSP: ') then
    return nil
  end
  return map
end

--- `<SID>` in a Vim script mapping's rhs, as the script's own functions are named.
local function resolve_sid(rhs, map)
  if map.sid and map.sid > 0 then
    return (rhs:gsub('<[Ss][Ii][Dd]>', '<SNR>' .. map.sid .. '_'))
  end
  return rhs
end

--- Do what `lhs` would do without the plugin: run `map` (from capture) or, without one, the key itself.
function M.run(lhs, map)
  if not map then
    api.nvim_feedkeys(termcodes(lhs), 'n', false)
    return
  end
  local keys
  if map.callback then
    local result = map.callback()
    if map.expr ~= 1 or type(result) ~= 'string' then
      return
    end
    keys = map.replace_keycodes == 1 and termcodes(result) or result
  elseif map.expr == 1 then
    keys = vim.fn.eval(resolve_sid(map.rhs, map))
  else
    keys = termcodes(resolve_sid(map.rhs, map))
  end
  -- 'n' (no remap) for a noremap mapping, and for one whose keys hold `lhs` again (ours would catch it).
  local remap = map.noremap ~= 1 and not keys:find(termcodes(lhs), 1, true)
  api.nvim_feedkeys(keys, remap and 'm' or 'n', false)
end

return M
