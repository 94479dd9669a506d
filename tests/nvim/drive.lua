-- Drives a real headless Neovim for tests/test_nvim.py: loads the plugin from editors/nvim, lets
-- it attach the real server to the file given on the command line, runs :CoeditFix (or
-- :CoeditFix then :CoeditCancel), writes the buffer, and records what happened as JSON in
-- $COEDIT_RESULT. Every wait is bounded; on a timeout the record says which one and Neovim
-- exits 1. Used as `nvim --headless -u tests/nvim/drive.lua -i NONE FILE`.
local env = vim.env
vim.opt.runtimepath:prepend(env.COEDIT_EDITORS)
vim.lsp.log.set_level(vim.log.levels.INFO) -- the server's log messages go to lsp.log
vim.o.swapfile = false

local record = { action = env.COEDIT_ACTION, progress = {}, messages = {}, attached = false }
local function save_and_quit(status)
  record.status = status
  record.buffer = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n') .. '\n'
  record.modified = vim.bo.modified
  local f = assert(io.open(env.COEDIT_RESULT, 'w'))
  f:write(vim.json.encode(record))
  f:close()
  vim.cmd(status == 'ok' and 'qall!' or 'cquit! 1')
end

local function wait(what, seconds, condition)
  if not vim.wait(seconds * 1000, condition, 50) then
    save_and_quit('timed out waiting for ' .. what)
    return false
  end
  return true
end

local notify = vim.notify
vim.notify = function(message, level, opts)
  table.insert(record.messages, message)
  return notify(message, level, opts)
end
vim.api.nvim_create_autocmd('LspProgress', {
  callback = function(event)
    local value = event.data.params.value
    table.insert(record.progress, { kind = value.kind, text = value.message or value.title or '' })
  end,
})
vim.api.nvim_create_autocmd('LspAttach', {
  callback = function() record.attached = true end,
})

require('coedit').setup {
  interpreter = env.COEDIT_PYTHON,
  settings = vim.json.decode(env.COEDIT_SETTINGS),
  -- in the test's process group, so that the test can end Neovim and the server together
  lsp = { detached = false },
}

local function ended()
  for _, p in ipairs(record.progress) do
    if p.kind == 'end' then return p.text end
  end
end

local function drive()
  local timeout = tonumber(env.COEDIT_WAIT_S)
  if not wait('the server to attach', 60, function() return record.attached end) then return end
  vim.api.nvim_win_set_cursor(0, { tonumber(env.COEDIT_LINE), 4 })
  vim.cmd('CoeditFix')
  if env.COEDIT_ACTION == 'cancel' then
    -- cancel while the fix is still running its first test run
    if not wait('the fix to start', 60, function() return #record.progress > 0 end) then return end
    record.status_line = require('coedit').status()
    vim.cmd('CoeditCancel')
  end
  if not wait('the fix to end', timeout, ended) then return end
  record.ended = ended()
  -- the server's message with the outcome comes right after the progress ends
  if not wait('the outcome message', 10, function()
    return vim.iter(record.messages):any(function(m) return m:find(record.ended, 1, true) ~= nil end)
  end) then return end
  if env.COEDIT_ACTION == 'fix' then
    -- the edit is applied before the progress ends; `modified` says it reached the buffer
    record.modified_before_write = vim.bo.modified
    vim.cmd('write')
  end
  save_and_quit('ok')
end

vim.api.nvim_create_autocmd('VimEnter', { once = true, callback = function() vim.schedule(drive) end })
