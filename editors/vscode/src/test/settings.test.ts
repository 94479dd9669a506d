// The settings the extension sends agree with the server's own (server/options.py) and with the
// settings VS Code shows (package.json), and are read, resolved and compared as documented.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeEach, test } from 'node:test';
import { ConfigurationChangeEvent, WorkspaceConfiguration, WorkspaceFolder } from 'vscode';
import {
    changeNeedsRestart,
    changesServerSettings,
    interpreterSetting,
    resolveVariables,
    SERVER_DEFAULTS,
    serverSettings,
} from '../common/settings';
import { reset, state, Uri, workspace } from './stubs/vscode';

const EXTENSION = path.resolve(__dirname, '..', '..');
const REPO = path.resolve(EXTENSION, '..', '..');
const folder = { uri: Uri.file('/home/me/project'), name: 'project', index: 0 } as unknown as WorkspaceFolder;
const config = () => workspace.getConfiguration('coedit') as unknown as WorkspaceConfiguration;
const change = (...keys: string[]) =>
    ({ affectsConfiguration: (s: string) => keys.some((k) => k === s || k.startsWith(`${s}.`)) }) as ConfigurationChangeEvent;

/** `name: type = default  # ...` lines of the Options dataclass, as camelCase -> value. */
function pythonDefaults(): Record<string, unknown> {
    const source = fs.readFileSync(path.join(REPO, 'server', 'options.py'), 'utf8');
    const body = source.slice(source.indexOf('class Options'), source.indexOf('\ndef '));
    const out: Record<string, unknown> = {};
    for (const m of body.matchAll(/^ {4}(\w+): [\w[\]]+ = (.+?)\s+#/gm)) {
        const name = m[1].replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
        const value = m[2];
        const list = value.match(/^field\(default_factory=lambda: (\[.*\])\)$/);
        const bool = value === 'True' || value === 'False';
        out[name] = value.startsWith('"') ? JSON.parse(value) : list ? JSON.parse(list[1]) : value.startsWith('field(') ? []
            : bool ? value === 'True' : Number(value);
    }
    return out;
}

beforeEach(reset);

test('the server settings and defaults are exactly those of server/options.py', () => {
    assert.deepEqual({ ...SERVER_DEFAULTS }, pythonDefaults());
});

test('package.json offers every server setting with the same default, and the interpreter', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(EXTENSION, 'package.json'), 'utf8'));
    const properties = manifest.contributes.configuration.properties;
    for (const [key, value] of Object.entries(SERVER_DEFAULTS)) {
        assert.deepEqual(properties[`coedit.${key}`]?.default, value, `coedit.${key}`);
    }
    assert.deepEqual(Object.keys(properties).sort(), [...Object.keys(SERVER_DEFAULTS).map((k) => `coedit.${k}`), 'coedit.interpreter'].sort());
});

test('settings are read, paths resolved, and sent camelCase', () => {
    Object.assign(state.settings, {
        'coedit.model': '${workspaceFolder}/models/fix.gguf',
        'coedit.gpuLayers': -1,
        'coedit.k': 2,
        'coedit.maxTurns': 6,
        'coedit.timeout': 12.5,
        'coedit.tests': ['~/t/test_a.py'],
    });
    const sent = serverSettings(config(), folder);
    assert.equal(sent.model, '/home/me/project/models/fix.gguf');
    assert.deepEqual(sent.tests, [path.join(os.homedir(), 't/test_a.py')]);
    assert.deepEqual([sent.gpuLayers, sent.k, sent.maxTurns, sent.timeout, sent.backend], [-1, 2, 6, 12.5, 'auto']);
});

test("the tests' interpreter is coedit.python, else the Python extension's selection, else the server decides", () => {
    assert.equal(serverSettings(config(), folder).python, '');
    assert.equal(serverSettings(config(), folder, '/venv/bin/python').python, '/venv/bin/python');
    state.settings['coedit.python'] = '${workspaceFolder}/.venv/bin/python';
    assert.equal(serverSettings(config(), folder, '/venv/bin/python').python, '/home/me/project/.venv/bin/python');
});

test('the interpreter setting: blanks dropped, variables resolved, arguments kept', () => {
    assert.deepEqual(interpreterSetting(config(), folder), []);
    state.settings['coedit.interpreter'] = ['${userHome}/coedit/.venv/bin/python', '-X', 'utf8', ' '];
    assert.deepEqual(interpreterSetting(config(), folder), [`${os.homedir()}/coedit/.venv/bin/python`, '-X', 'utf8']);
    assert.equal(resolveVariables('~/m.gguf'), path.join(os.homedir(), 'm.gguf'));
});

test('only the interpreter needs a restart; server settings are sent to the running server', () => {
    assert.ok(changeNeedsRestart(change('coedit.interpreter')));
    assert.ok(!changeNeedsRestart(change('coedit.model')));
    assert.ok(changesServerSettings(change('coedit.model')) && changesServerSettings(change('coedit.gpuLayers')));
    assert.ok(!changesServerSettings(change('editor.fontSize')));
});
