// Names shared by the extension's parts, in one place.

export const SERVER_ID = 'coedit';
export const SERVER_NAME = 'coedit';
export const SETTINGS_SECTION = 'coedit';

// `-P`: the server's working directory (the workspace) is not put on sys.path, so a project's own
// `server.py` cannot shadow coedit's `server` package. Needs Python >= 3.11, as coedit does.
export const SERVER_ARGS = ['-P', '-m', 'server'];
export const MIN_PYTHON = { major: 3, minor: 11 };

// The server's commands (workspace/executeCommand). vscode-languageclient registers these ids as
// VS Code commands itself (from the server's executeCommandProvider), so the extension's own
// commands below must have other ids.
export const ServerCommand = {
    fix: 'coedit.fix', // [uri, line, endLine?] -> {started, reason?}
    cancel: 'coedit.cancel', // [uri?] -> {cancelled: n}
    report: 'coedit.report', // [uri?] -> markdown
} as const;

export const Command = {
    fixWithModel: 'coedit.fixWithModel',
    cancelFix: 'coedit.cancelFix',
    showLastChain: 'coedit.showLastChain',
    restart: 'coedit.restart',
} as const;

// Several configuration events arrive for one edit of settings.json: restart once.
export const RESTART_DELAY_MS = 500;
