-- coedit's language server ("Fix with model" for Python), for Neovim >= 0.11.
--
-- With this folder on 'runtimepath', Neovim finds this file by name:
--     vim.lsp.config('coedit', { init_options = { model = '~/models/coedit.gguf' } })
--     vim.lsp.enable('coedit')
-- `require('coedit').setup{}` does the same and adds :CoeditFix, :CoeditCancel, :CoeditReport.
-- The settings (init_options, camelCase) are the server's; see the Neovim section of docs/server.md.

return {
  -- `-P`: do not put the working directory on sys.path, so a project's own `server.py` cannot
  -- shadow coedit's `server` package. The interpreter must have coedit installed.
  cmd = { 'python3', '-P', '-m', 'server' },
  filetypes = { 'python' },
  root_markers = { 'pyproject.toml', 'setup.py', 'setup.cfg', 'pytest.ini', 'tox.ini', '.git' },
  init_options = vim.empty_dict(),
  handlers = {
    -- The server's messages (a fix's outcome) through vim.notify: Neovim's own handler echoes
    -- them with a trailing newline, which stops at a hit-enter prompt after every fix.
    ['window/showMessage'] = function(_, params)
      local levels = { vim.log.levels.ERROR, vim.log.levels.WARN, vim.log.levels.INFO, vim.log.levels.DEBUG }
      vim.notify(params.message, levels[params.type] or vim.log.levels.INFO)
      return params
    end,
  },
  before_init = function(params)
    -- An empty Lua table is encoded as a JSON array ([]); a merged config may have lost the
    -- empty_dict() above, so check at the last moment.
    if params.initializationOptions == nil or next(params.initializationOptions) == nil then
      params.initializationOptions = vim.empty_dict()
    end
  end,
}
