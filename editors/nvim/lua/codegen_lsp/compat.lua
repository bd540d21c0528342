-- The few calls whose shape differs between Neovim 0.10, 0.11 and later.
local api = vim.api

local M = {}

M.has_011 = vim.fn.has('nvim-0.11') == 1

function M.buf(bufnr)
  return (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
end

--- Byte column of LSP position (row, character) in `encoding` units.
function M.byte_col(bufnr, row, character, encoding)
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  if encoding == 'utf-8' then
    return math.min(character, #line)
  end
  if M.has_011 then
    return vim.str_byteindex(line, encoding, character, false)
  end
  local ok, col = pcall(vim.str_byteindex, line, character, encoding == 'utf-16')
  return ok and col or #line
end

-- 0.11 made the client's methods take `self` (client:request); 0.10 has client.request.
function M.request(client, method, params, handler, bufnr)
  if M.has_011 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

function M.cancel_request(client, id)
  if M.has_011 then
    return client:cancel_request(id)
  end
  return client.cancel_request(id)
end

function M.notify(client, method, params)
  if M.has_011 then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

function M.stop(client)
  if M.has_011 then
    return client:stop()
  end
  return client.stop()
end

function M.islist(t)
  return (vim.islist or vim.tbl_islist)(t)
end

return M
