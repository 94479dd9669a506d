-- coedit for Neovim >= 0.11: starts the language server for Python buffers and adds
--   :CoeditFix     "Fix with model" on the function at the cursor (or the selected lines)
--   :CoeditCancel  cancel the fix running on this buffer
--   :CoeditReport  the last chain of edits, in a scratch buffer
-- Progress arrives as LSP work-done progress: `require('coedit').status()` is a statusline item.
--
--   require('coedit').setup {
--     interpreter = '~/.venvs/coedit/bin/python',  -- a Python with coedit installed
--     settings = { model = '~/models/coedit.gguf', k = 4, gpuLayers = -1 },
--   }
local M = {}

local FIX, CANCEL, REPORT = 'coedit.fix', 'coedit.cancel', 'coedit.report'

-- token -> latest progress text of a running fix (one per buffer at most)
local running = {}

local function client_for(bufnr)
  local client = vim.lsp.get_clients({ bufnr = bufnr, name = 'coedit' })[1]
  if not client then
    vim.notify('coedit: the language server is not attached to this buffer (see :checkhealth vim.lsp)',
      vim.log.levels.WARN)
  end
  return client
end

local function report_error(err)
  if err then
    vim.notify('coedit: ' .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
  end
end

--- The server's settings as init options: a JSON object even when empty (`{}` would be `[]`).
local function init_options(settings)
  if settings == nil or next(settings) == nil then
    return vim.empty_dict()
  end
  return settings
end

--- Ask the server for its code actions on `first..last` (0-based lines) and run "Fix with model".
function M.fix(first, last)
  local bufnr = vim.api.nvim_get_current_buf()
  local client = client_for(bufnr)
  if not client then
    return
  end
  local col = first == last and vim.api.nvim_win_get_cursor(0)[2] or 0
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    range = { start = { line = first, character = col }, ['end'] = { line = last, character = col } },
    context = { diagnostics = {} },
  }
  client:request('textDocument/codeAction', params, function(err, actions)
    if err then
      return report_error(err)
    end
    for _, action in ipairs(actions or {}) do
      -- a CodeAction carries its Command in `command`; a bare Command has a string there
      local command = type(action.command) == 'table' and action.command or action
      if command.command == FIX then
        return client:exec_cmd(command, { bufnr = bufnr }, report_error)
      elseif command.command == CANCEL then
        return vim.notify('coedit: a fix is already running on this buffer; :CoeditCancel stops it')
      end
    end
    vim.notify('coedit: put the cursor inside a Python function to fix it', vim.log.levels.WARN)
  end, bufnr)
end

function M.cancel()
  local bufnr = vim.api.nvim_get_current_buf()
  local client = client_for(bufnr)
  if client then
    client:exec_cmd({ title = 'Cancel fix', command = CANCEL, arguments = { vim.uri_from_bufnr(bufnr) } },
      { bufnr = bufnr }, report_error)
  end
end

function M.report()
  local bufnr = vim.api.nvim_get_current_buf()
  local client = client_for(bufnr)
  if not client then
    return
  end
  local command = { title = 'Show last chain of edits', command = REPORT, arguments = { vim.uri_from_bufnr(bufnr) } }
  client:exec_cmd(command, { bufnr = bufnr }, function(err, markdown)
    if err then
      return report_error(err)
    end
    if type(markdown) ~= 'string' or markdown == '' then
      return vim.notify('coedit: no fix has run on this buffer yet')
    end
    vim.cmd('botright new')
    vim.bo.buftype, vim.bo.bufhidden, vim.bo.swapfile, vim.bo.filetype = 'nofile', 'wipe', false, 'markdown'
    vim.api.nvim_buf_set_lines(0, 0, -1, false, vim.split(markdown, '\n'))
  end)
end

--- The running fix's progress ("coedit: episode 1/4 · turn 3 · …"), or '' when none runs.
function M.status()
  local _, text = next(running)
  return text or ''
end

local function on_progress(event)
  local client = vim.lsp.get_client_by_id(event.data.client_id)
  if not client or client.name ~= 'coedit' then
    return
  end
  local token, value = event.data.params.token, event.data.params.value
  if value.kind == 'end' then
    running[token] = nil
  else
    running[token] = 'coedit: ' .. (value.message or value.title or '')
  end
  vim.cmd.redrawstatus()
end

--- opts.interpreter: the Python that runs the server (default: python3 on PATH)
--- opts.settings: the server's settings, camelCase (model, backend, gpuLayers, k, maxTurns, timeout, …)
--- opts.lsp: anything else for vim.lsp.config (e.g. { detached = false })
function M.setup(opts)
  opts = opts or {}
  local config = { init_options = init_options(opts.settings) }
  if opts.interpreter then
    config.cmd = { vim.fn.expand(opts.interpreter), '-P', '-m', 'server' }
  end
  vim.lsp.config('coedit', vim.tbl_extend('force', config, opts.lsp or {}))
  vim.lsp.enable('coedit')

  vim.api.nvim_create_user_command('CoeditFix', function(cmd)
    local first, last = cmd.line1 - 1, cmd.line2 - 1
    if cmd.range == 0 then
      first = vim.api.nvim_win_get_cursor(0)[1] - 1
      last = first
    end
    M.fix(first, last)
  end, { range = true, desc = 'coedit: fix the function at the cursor with the model' })
  vim.api.nvim_create_user_command('CoeditCancel', M.cancel, { desc = 'coedit: cancel the running fix' })
  vim.api.nvim_create_user_command('CoeditReport', M.report, { desc = 'coedit: show the last chain of edits' })
  vim.api.nvim_create_autocmd('LspProgress', {
    group = vim.api.nvim_create_augroup('coedit', { clear = true }),
    callback = on_progress,
  })
end

return M
