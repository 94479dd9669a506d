// coedit for VS Code: starts the coedit language server ("Fix with model" for Python) with the
// configured interpreter and wires its commands, settings and log. The work is in common/.
import { ExtensionContext } from 'vscode';
import { cancelFix, fixWithModel, showLastChain, withServer } from './common/commands';
import { Command, SERVER_NAME } from './common/constants';
import { registerLogger, traceError, traceInfo } from './common/log';
import { onDidChangeSelectedInterpreter, selectedInterpreter } from './common/python';
import { CoeditServer, Launch } from './common/server';
import { changeNeedsRestart, changesServerSettings, interpreterSetting, serverSettings } from './common/settings';
import {
    activeEditor,
    createOutputChannel,
    firstWorkspaceFolder,
    getConfiguration,
    onDidChangeConfiguration,
    registerCommand,
    showError,
} from './common/vscodeapi';

let server: CoeditServer | undefined;

/** Where the server's Python comes from: `coedit.interpreter`, else the Python extension's. */
async function launch(): Promise<Launch | undefined> {
    const folder = firstWorkspaceFolder();
    const selected = await selectedInterpreter(folder?.uri);
    const interpreter = interpreterSetting(getConfiguration(), folder);
    if (interpreter.length === 0 && !selected) {
        traceError('No Python to run the server: set "coedit.interpreter" to a Python (>= 3.11) with coedit ' +
            'installed, or select one with the Python extension.');
        showError('coedit: no Python interpreter; set "coedit.interpreter" (see the "coedit" output).');
        return undefined;
    }
    traceInfo(interpreter.length ? `Server Python (coedit.interpreter): ${interpreter.join(' ')}` : `Server Python: ${selected}`);
    return {
        interpreter: interpreter.length ? interpreter : [selected as string],
        settings: () => serverSettings(getConfiguration(), folder, selected),
        cwd: folder?.uri.fsPath,
    };
}

export async function activate(context: ExtensionContext): Promise<void> {
    const channel = createOutputChannel(SERVER_NAME);
    context.subscriptions.push(channel, registerLogger(channel));
    const coedit = (server = new CoeditServer(channel, launch));

    context.subscriptions.push(
        registerCommand(Command.fixWithModel, () => withServer(coedit.client, (s) => fixWithModel(s, activeEditor()))),
        registerCommand(Command.cancelFix, () => withServer(coedit.client, (s) => cancelFix(s, activeEditor()))),
        registerCommand(Command.showLastChain, () => withServer(coedit.client, (s) => showLastChain(s, activeEditor()))),
        registerCommand(Command.restart, () => coedit.restart()),
        onDidChangeConfiguration(async (e) => {
            if (changeNeedsRestart(e)) {
                await coedit.restart();
            } else if (changesServerSettings(e)) {
                const folder = firstWorkspaceFolder();
                await coedit.sendSettings(serverSettings(getConfiguration(), folder, await selectedInterpreter(folder?.uri)));
            }
        }),
    );
    const selectionChanged = await onDidChangeSelectedInterpreter(() => coedit.restart());
    if (selectionChanged) {
        context.subscriptions.push(selectionChanged);
    }
    await coedit.restart();
}

export async function deactivate(): Promise<void> {
    await server?.stop();
}
