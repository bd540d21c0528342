-- Is a completion menu open? Ghost text under a menu hides the menu's entries and fights it for <Tab>, so the
-- plugin shows none while one is open: Neovim's popup menu (`pumvisible()`), and nvim-cmp / blink.cmp through
-- their public calls when the person has them loaded (neither is required).
local M = {}

--- `package.loaded[name]` if a plugin is loaded, else nil (never loads it).
local function loaded(name)
  local module = package.loaded[name]
  return type(module) == 'table' and module or nil
end

local function called(fn)
  if type(fn) ~= 'function' then
    return false
  end
  local ok, visible = pcall(fn)
  return ok and visible == true
end

---@return boolean
function M.visible()
  if vim.fn.pumvisible() == 1 then
    return true
  end
  local cmp = loaded('cmp')
  if cmp and called(cmp.visible) then -- nvim-cmp: require('cmp').visible()
    return true
  end
  local blink = loaded('blink.cmp')
  if blink and (called(blink.is_menu_visible) or called(blink.is_visible)) then -- blink.cmp (new / old name)
    return true
  end
  return false
end

return M
