// The commands: what each asks the server, and what the user sees when it cannot.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import { TextEditor } from 'vscode';
import { cancelFix, fixWithModel, Server, showLastChain, withServer } from '../common/commands';
import { editorOn, reset, state } from './stubs/vscode';

const FILE = '/project/calc.py';
const URI = 'file:///project/calc.py';

/** A server that answers executeCommand by command id, and records what it was asked. */
function serverAnswering(answers: Record<string, unknown>) {
    const asked: { method: string; params: { command: string; arguments: unknown[] } }[] = [];
    const server: Server = {
        async sendRequest<R>(method: string, params: unknown): Promise<R> {
            const p = params as { command: string; arguments: unknown[] };
            asked.push({ method, params: p });
            return answers[p.command] as R;
        },
    };
    return { server, asked };
}
const editor = (...args: Parameters<typeof editorOn>) => editorOn(...args) as unknown as TextEditor;

beforeEach(reset);

test('Fix with model asks coedit.fix for the cursor line (0-based) of the active file', async () => {
    const { server, asked } = serverAnswering({ 'coedit.fix': { started: true } });
    await fixWithModel(server, editor(FILE, 2));
    assert.deepEqual(asked, [{ method: 'workspace/executeCommand', params: { command: 'coedit.fix', arguments: [URI, 2, 2] } }]);
});

test('Fix with model on a selection sends its first and last line', async () => {
    const { server, asked } = serverAnswering({});
    await fixWithModel(server, editor(FILE, 4, 9));
    assert.deepEqual(asked[0].params.arguments, [URI, 4, 9]);
});

test('Fix with model without a Python file on disk asks nothing and says what to do', async () => {
    const { server, asked } = serverAnswering({});
    await fixWithModel(server, undefined);
    await fixWithModel(server, editor('/project/notes.md', 1, 1, 'markdown'));
    await fixWithModel(server, editor('Untitled-1', 1, 1, 'python', 'untitled'));
    assert.equal(asked.length, 0);
    assert.equal(state.messages.length, 3);
    assert.match(state.messages[0][1], /put the cursor inside the function/);
});

test("Cancel fix cancels the active file's fix, or all fixes, and says when none ran", async () => {
    const { server, asked } = serverAnswering({ 'coedit.cancel': { cancelled: 1 } });
    await cancelFix(server, editor(FILE, 0));
    await cancelFix(server, undefined);
    assert.deepEqual(asked.map((a) => a.params), [
        { command: 'coedit.cancel', arguments: [URI] },
        { command: 'coedit.cancel', arguments: [] },
    ]);
    assert.deepEqual(state.messages, []);
    await cancelFix(serverAnswering({ 'coedit.cancel': { cancelled: 0 } }).server, undefined);
    assert.deepEqual(state.messages, [['info', 'coedit: no fix is running.']]);
});

test('Show last chain of edits opens the report as markdown', async () => {
    const report = '# coedit: fixing `add`\n\n## Episode 1: solved\n';
    const { server, asked } = serverAnswering({ 'coedit.report': report });
    await showLastChain(server, editor(FILE, 0));
    assert.deepEqual(asked[0].params, { command: 'coedit.report', arguments: [URI] });
    assert.deepEqual(state.opened, [{ language: 'markdown', content: report }]);
});

test('Show last chain of edits before any fix says so', async () => {
    await showLastChain(serverAnswering({ 'coedit.report': '' }).server, undefined);
    assert.deepEqual(state.opened, []);
    assert.deepEqual(state.messages, [['info', 'coedit: no fix has run yet.']]);
});

test('a command with no server, or a failing request, shows an error instead of throwing', async () => {
    let ran = false;
    await withServer(undefined, async () => {
        ran = true;
    });
    assert.ok(!ran);
    await withServer(serverAnswering({}).server, async () => {
        throw new Error('Request workspace/executeCommand failed');
    });
    assert.deepEqual(state.messages.map((m) => m[0]), ['error', 'error']);
    assert.match(state.messages[0][1], /server is not running/);
    assert.match(state.messages[1][1], /Request workspace\/executeCommand failed/);
});
