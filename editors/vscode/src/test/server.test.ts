// Starting, restarting and stopping the language client, and what it is started with.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { LogOutputChannel } from 'vscode';
import { CoeditServer, Launch, serverOptions } from '../common/server';
import { registerLogger } from '../common/log';
import { SERVER_DEFAULTS } from '../common/settings';
import { LanguageClient } from './stubs/languageclient';
import { OutputChannel, reset } from './stubs/vscode';

let channel: OutputChannel;
const launch = (interpreter = ['/py/bin/python']): Launch => ({
    interpreter,
    settings: () => ({ ...SERVER_DEFAULTS, k: 2 }),
    cwd: '/project',
});

beforeEach(() => {
    reset();
    LanguageClient.reset();
    channel = new OutputChannel('coedit');
    registerLogger(channel as unknown as LogOutputChannel);
});

test('the server is `python -P -m server` with the interpreter and its arguments, in the workspace', () => {
    const options = serverOptions(launch(['/py/bin/python', '-X', 'utf8']));
    assert.equal(options.command, '/py/bin/python');
    assert.deepEqual(options.args, ['-X', 'utf8', '-P', '-m', 'server']);
    assert.equal(options.options?.cwd, '/project');
});

test('a start makes a client for Python files on disk, with the settings as initialization options', async () => {
    const server = new CoeditServer(channel as unknown as LogOutputChannel, async () => launch());
    await server.restart();
    const [client] = LanguageClient.created;
    assert.equal(server.client as unknown, client);
    assert.deepEqual(client.clientOptions.documentSelector, [{ scheme: 'file', language: 'python' }]);
    assert.equal(client.clientOptions.outputChannel, channel);
    const init = client.clientOptions.initializationOptions as () => unknown;
    assert.deepEqual(init(), { ...SERVER_DEFAULTS, k: 2 }); // a function: read again on a crash restart
    assert.ok(channel.lines.some((l) => l.includes('/py/bin/python -P -m server')));
});

test('a restart stops the old client before the new one starts, and restarts run one at a time', async () => {
    const server = new CoeditServer(channel as unknown as LogOutputChannel, async () => launch());
    await Promise.all([server.restart(), server.restart(), server.restart()]);
    const [a, b, c] = LanguageClient.created;
    assert.deepEqual([a.events, b.events, c.events], [['start', 'stop'], ['start', 'stop'], ['start']]);
    assert.equal(server.client as unknown, c);
    await server.stop();
    assert.deepEqual(c.events, ['start', 'stop']);
    assert.equal(server.client, undefined);
});

test('a server that does not start is logged with what to do, and no client is kept', async () => {
    LanguageClient.startError = new Error('spawn /py/bin/python ENOENT');
    const server = new CoeditServer(channel as unknown as LogOutputChannel, async () => launch());
    await server.restart();
    assert.equal(server.client, undefined);
    assert.ok(channel.lines.some((l) => l.startsWith('[error]') && l.includes('ENOENT') && l.includes('coedit.interpreter')));
});

test('no launch (no interpreter) starts nothing', async () => {
    const server = new CoeditServer(channel as unknown as LogOutputChannel, async () => undefined);
    await server.restart();
    assert.equal(LanguageClient.created.length, 0);
});

test('settings go to a running server as workspace/didChangeConfiguration, section coedit', async () => {
    const server = new CoeditServer(channel as unknown as LogOutputChannel, async () => launch());
    await server.sendSettings({ ...SERVER_DEFAULTS }); // nothing running: nothing sent, no error
    await server.restart();
    await server.sendSettings({ ...SERVER_DEFAULTS, model: '/m.gguf' });
    assert.deepEqual(LanguageClient.created[0].notifications, [
        { method: 'workspace/didChangeConfiguration', params: { settings: { coedit: { ...SERVER_DEFAULTS, model: '/m.gguf' } } } },
    ]);
});
