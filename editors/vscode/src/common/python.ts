// The Python extension's selected interpreter: what runs the server when `coedit.interpreter` is
// not set, and what runs the workspace's tests when `coedit.python` is not set. The Python
// extension is optional: without it those two settings (or the workspace's .venv) are used.
import { Disposable, Uri } from 'vscode';
import { PythonExtension } from '@vscode/python-extension';
import { MIN_PYTHON } from './constants';
import { traceInfo, traceWarn } from './log';

async function pythonApi(): Promise<PythonExtension | undefined> {
    try {
        return await PythonExtension.api();
    } catch {
        return undefined; // not installed or disabled
    }
}

/** The selected interpreter's path, if the Python extension is there and it is Python >= 3.11. */
export async function selectedInterpreter(resource?: Uri): Promise<string | undefined> {
    const api = await pythonApi();
    if (!api) {
        return undefined;
    }
    const env = await api.environments.resolveEnvironment(api.environments.getActiveEnvironmentPath(resource));
    const path = env?.executable.uri?.fsPath;
    const version = env?.version;
    if (!path || !version) {
        return undefined;
    }
    if (version.major !== MIN_PYTHON.major || version.minor < MIN_PYTHON.minor) {
        traceWarn(`The selected Python ${version.major}.${version.minor} (${path}) is too old: coedit needs 3.11 or later.`);
        return undefined;
    }
    traceInfo(`Selected Python (Python extension): ${path}`);
    return path;
}

/** Calls `listener` when the user selects another interpreter. */
export async function onDidChangeSelectedInterpreter(listener: () => unknown): Promise<Disposable | undefined> {
    const api = await pythonApi();
    return api?.environments.onDidChangeActiveEnvironmentPath(() => listener());
}
