// Activation end to end against the stubs: which Python starts the server, the commands it
// registers, what a settings change does, and deactivation.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
import { ExtensionContext } from 'vscode';
import { activate, deactivate } from '../extension';
import { LanguageClient } from './stubs/languageclient';
import { changeSettings, editorOn, EventEmitter, reset, state, Uri, window, workspace } from './stubs/vscode';

let context: { subscriptions: { dispose(): void }[] };

/** The Python extension with `path` (Python major.minor) selected. */
function pythonExtension(path: string, minor = 12) {
    const changed = new EventEmitter<unknown>();
    const environments = {
        getActiveEnvironmentPath: () => ({ id: path, path }),
        resolveEnvironment: async () => ({ executable: { uri: Uri.file(path) }, version: { major: 3, minor } }),
        onDidChangeActiveEnvironmentPath: changed.event,
    };
    state.extensions['ms-python.python'] = { isActive: true, exports: { environments } };
    return changed;
}

beforeEach(() => {
    reset();
    LanguageClient.reset();
    context = { subscriptions: [] };
    workspace.workspaceFolders = [{ uri: Uri.file('/project'), name: 'project', index: 0 }];
});

afterEach(async () => {
    await deactivate();
    context.subscriptions.forEach((d) => d.dispose());
});

test('activation starts the server with coedit.interpreter and registers the four commands', async () => {
    state.settings['coedit.interpreter'] = ['/coedit/.venv/bin/python'];
    await activate(context as unknown as ExtensionContext);
    assert.deepEqual([...state.commands.keys()].sort(),
        ['coedit.cancelFix', 'coedit.fixWithModel', 'coedit.restart', 'coedit.showLastChain']);
    const [client] = LanguageClient.created;
    assert.equal(client.serverOptions.command, '/coedit/.venv/bin/python');
    assert.deepEqual(client.serverOptions.args, ['-P', '-m', 'server']);
    assert.equal(client.serverOptions.options?.cwd, '/project');
    assert.equal(state.channels[0].name, 'coedit');
});

test("without coedit.interpreter the Python extension's selection runs the server and the tests", async () => {
    pythonExtension('/project/.venv/bin/python');
    await activate(context as unknown as ExtensionContext);
    const [client] = LanguageClient.created;
    assert.equal(client.serverOptions.command, '/project/.venv/bin/python');
    const init = (client.clientOptions.initializationOptions as () => { python: string })();
    assert.equal(init.python, '/project/.venv/bin/python');
});

test('a Python older than 3.11, or none at all, starts no server and says how to set one', async () => {
    pythonExtension('/usr/bin/python3.10', 10);
    await activate(context as unknown as ExtensionContext);
    assert.equal(LanguageClient.created.length, 0);
    assert.ok(state.messages.some(([kind, text]) => kind === 'error' && text.includes('coedit.interpreter')));
    assert.ok(state.channels[0].lines.some((l) => l.includes('too old')));
});

test('Fix with model, through the registered command, asks the running server', async () => {
    state.settings['coedit.interpreter'] = ['/coedit/.venv/bin/python'];
    await activate(context as unknown as ExtensionContext);
    window.activeTextEditor = editorOn('/project/calc.py', 2);
    await state.commands.get('coedit.fixWithModel')!();
    assert.deepEqual(LanguageClient.created[0].requests, [
        { method: 'workspace/executeCommand', params: { command: 'coedit.fix', arguments: ['file:///project/calc.py', 2, 2] } },
    ]);
});

test('a server setting is sent to the running server; a new interpreter restarts it', async () => {
    state.settings['coedit.interpreter'] = ['/a/python'];
    await activate(context as unknown as ExtensionContext);
    await changeSettings({ 'coedit.model': '/models/fix.gguf', 'coedit.gpuLayers': -1 });
    const [first] = LanguageClient.created;
    assert.equal(LanguageClient.created.length, 1);
    const sent = first.notifications[0].params as { settings: { coedit: { model: string; gpuLayers: number } } };
    assert.deepEqual([sent.settings.coedit.model, sent.settings.coedit.gpuLayers], ['/models/fix.gguf', -1]);

    await changeSettings({ 'coedit.interpreter': ['/b/python'] });
    const [, second] = LanguageClient.created;
    assert.deepEqual(first.events, ['start', 'stop']);
    assert.equal(second.serverOptions.command, '/b/python');
    assert.equal((second.clientOptions.initializationOptions as () => { model: string })().model, '/models/fix.gguf');
});

test('selecting another interpreter in the Python extension restarts the server', async () => {
    const selected = pythonExtension('/project/.venv/bin/python');
    await activate(context as unknown as ExtensionContext);
    await selected.fire({});
    await state.commands.get('coedit.restart')!();
    assert.equal(LanguageClient.created.length, 3);
    await deactivate();
    assert.ok(LanguageClient.created.every((c) => !c.isRunning()));
});
