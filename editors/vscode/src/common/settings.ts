// The extension's settings: which Python runs the server, and the server's own settings
// (server/options.py), sent as initialization options and on every change as
// workspace/didChangeConfiguration, so a change applies without losing a loaded model.
import * as os from 'os';
import { ConfigurationChangeEvent, WorkspaceConfiguration, WorkspaceFolder } from 'vscode';
import { SETTINGS_SECTION } from './constants';

// The server's settings with its defaults, camelCase as the server reads them.
export const SERVER_DEFAULTS = {
    model: '',
    backend: 'auto',
    gpuLayers: 0,
    threads: 0,
    runs: 400,
    seconds: 30,
    proposers: ['search', 'model'] as string[],
    k: 8,
    maxTurns: 10,
    temperature: 0.7,
    redraws: 0,
    timeout: 30,
    tests: [] as string[],
    python: '',
    warm: true,
    idleUnload: 600,
};
export type ServerSettings = typeof SERVER_DEFAULTS;
type Key = keyof ServerSettings;

/** `${workspaceFolder}`, `${userHome}` and a leading `~` in paths the user writes. */
export function resolveVariables(value: string, folder?: WorkspaceFolder): string {
    let out = value.replace(/\$\{userHome\}/g, os.homedir());
    if (folder) {
        out = out.replace(/\$\{workspaceFolder\}/g, folder.uri.fsPath);
    }
    return out.startsWith('~/') ? os.homedir() + out.slice(1) : out;
}

/** The `coedit.interpreter` setting: the Python (and arguments) that runs the server; [] if unset. */
export function interpreterSetting(config: WorkspaceConfiguration, folder?: WorkspaceFolder): string[] {
    return (config.get<string[]>('interpreter') ?? []).filter((s) => s.trim()).map((s) => resolveVariables(s, folder));
}

/** What the server is sent. `python` (the interpreter that runs the workspace's tests) falls back
 * to the Python extension's selected interpreter, which is the workspace's. */
export function serverSettings(config: WorkspaceConfiguration, folder?: WorkspaceFolder, selectedPython?: string): ServerSettings {
    const settings = { ...SERVER_DEFAULTS };
    for (const key of Object.keys(SERVER_DEFAULTS) as Key[]) {
        const value = config.get(key, SERVER_DEFAULTS[key]);
        // a value of the wrong type (hand-edited settings.json) is left to the server to report
        (settings as Record<Key, unknown>)[key] = value;
    }
    settings.model = resolveVariables(settings.model, folder);
    settings.python = resolveVariables(settings.python, folder) || selectedPython || '';
    if (Array.isArray(settings.tests)) {
        settings.tests = settings.tests.map((t) => resolveVariables(t, folder));
    }
    return settings;
}

/** A change to the interpreter needs a new server process; other settings are sent to the running one. */
export function changeNeedsRestart(e: ConfigurationChangeEvent): boolean {
    return e.affectsConfiguration(`${SETTINGS_SECTION}.interpreter`);
}

export function changesServerSettings(e: ConfigurationChangeEvent): boolean {
    return Object.keys(SERVER_DEFAULTS).some((key) => e.affectsConfiguration(`${SETTINGS_SECTION}.${key}`));
}
