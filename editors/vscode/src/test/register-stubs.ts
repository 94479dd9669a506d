// Loaded with `node --require` before the tests: `vscode` (which only exists inside VS Code) and
// `vscode-languageclient/node` (which needs it) resolve to the stand-ins in stubs/.
import Module = require('module');
import * as path from 'path';

const stubs: Record<string, string> = {
    vscode: path.join(__dirname, 'stubs', 'vscode.js'),
    'vscode-languageclient/node': path.join(__dirname, 'stubs', 'languageclient.js'),
};
type Resolve = (request: string, ...rest: unknown[]) => string;
const internals = Module as unknown as { _resolveFilename: Resolve };
const resolve = internals._resolveFilename;
internals._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]) {
    return stubs[request] ?? resolve.call(this, request, ...rest);
};
