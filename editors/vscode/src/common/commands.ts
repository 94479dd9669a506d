// The extension's commands. Each asks the server (workspace/executeCommand) about the active
// editor's document; the fix itself runs in the server, which reports progress (with a Cancel
// button), and applies the edit, through the language client.
import { TextEditor } from 'vscode';
import { ServerCommand } from './constants';
import { openMarkdown, showError, showInformation } from './vscodeapi';

/** The part of the language client the commands use. */
export interface Server {
    sendRequest<R>(method: string, params: unknown): Promise<R>;
}

function execute<R>(server: Server, command: string, args: unknown[]): Promise<R> {
    return server.sendRequest<R>('workspace/executeCommand', { command, arguments: args });
}

function pythonFile(editor: TextEditor | undefined): editor is TextEditor {
    return editor?.document.languageId === 'python' && editor.document.uri.scheme === 'file';
}

/** "Fix with model": the function at the cursor, or the one the selection is in. */
export async function fixWithModel(server: Server, editor: TextEditor | undefined): Promise<void> {
    if (!pythonFile(editor)) {
        showInformation('coedit: open a Python file and put the cursor inside the function to fix.');
        return;
    }
    const { start, end } = editor.selection;
    // the server says itself when a fix is already running on this file
    await execute(server, ServerCommand.fix, [editor.document.uri.toString(), start.line, end.line]);
}

/** "Cancel fix": the fix on the active file, or every running fix when no Python file is active. */
export async function cancelFix(server: Server, editor: TextEditor | undefined): Promise<void> {
    const args = pythonFile(editor) ? [editor.document.uri.toString()] : [];
    const result = await execute<{ cancelled: number }>(server, ServerCommand.cancel, args);
    if (!result?.cancelled) {
        showInformation('coedit: no fix is running.');
    }
}

/** "Show last chain of edits": the report of the last fix (of the active file), as markdown. */
export async function showLastChain(server: Server, editor: TextEditor | undefined): Promise<void> {
    const args = pythonFile(editor) ? [editor.document.uri.toString()] : [];
    const markdown = await execute<string>(server, ServerCommand.report, args);
    if (!markdown) {
        showInformation('coedit: no fix has run yet.');
        return;
    }
    await openMarkdown(markdown);
}

/** Runs a command against the server, or says why it cannot. */
export async function withServer(server: Server | undefined, run: (server: Server) => Promise<void>): Promise<void> {
    if (!server) {
        showError('coedit: the server is not running; see the "coedit" output for why.');
        return;
    }
    try {
        await run(server);
    } catch (e) {
        showError(`coedit: ${e instanceof Error ? e.message : e}`);
    }
}
