// A stand-in for the `vscode` module, which exists only inside VS Code (not downloadable here):
// the parts of the API the extension uses, recording what the extension did, with knobs for tests.

export class Disposable {
    constructor(private readonly onDispose: () => void = () => undefined) {}
    dispose(): void {
        this.onDispose();
    }
}

type Listener<T> = (e: T) => unknown;

export class EventEmitter<T> {
    private listeners: Listener<T>[] = [];
    event = (listener: Listener<T>): Disposable => {
        this.listeners.push(listener);
        return new Disposable(() => (this.listeners = this.listeners.filter((l) => l !== listener)));
    };
    async fire(e: T): Promise<void> {
        for (const listener of this.listeners) {
            await listener(e);
        }
    }
}

export class Uri {
    constructor(
        readonly scheme: string,
        readonly fsPath: string,
    ) {}
    static file(fsPath: string): Uri {
        return new Uri('file', fsPath);
    }
    toString(): string {
        return `${this.scheme}://${this.fsPath}`;
    }
}

export class OutputChannel {
    lines: string[] = [];
    shown = false;
    constructor(readonly name: string) {}
    info(line: string): void {
        this.lines.push(`[info] ${line}`);
    }
    warn(line: string): void {
        this.lines.push(`[warn] ${line}`);
    }
    error(line: string): void {
        this.lines.push(`[error] ${line}`);
    }
    appendLine(line: string): void {
        this.lines.push(line);
    }
    show(): void {
        this.shown = true;
    }
    dispose(): void {}
}

interface Position {
    line: number;
    character: number;
}

export interface FakeEditor {
    document: { uri: Uri; languageId: string };
    selection: { start: Position; end: Position };
}

/** An editor on `fsPath` with lines `start..end` (0-based) selected. */
export function editorOn(fsPath: string, start: number, end = start, languageId = 'python', scheme = 'file'): FakeEditor {
    return {
        document: { uri: new Uri(scheme, fsPath), languageId },
        selection: { start: { line: start, character: 4 }, end: { line: end, character: 4 } },
    };
}

export const state = {
    settings: {} as Record<string, unknown>, // 'coedit.k' -> 2
    messages: [] as [kind: string, text: string][],
    opened: [] as { language: string; content: string }[],
    channels: [] as OutputChannel[],
    commands: new Map<string, (...args: unknown[]) => unknown>(),
    extensions: {} as Record<string, unknown>,
};

const configurationChanged = new EventEmitter<{ affectsConfiguration(section: string): boolean }>();

export const workspace = {
    workspaceFolders: undefined as { uri: Uri; name: string; index: number }[] | undefined,
    getConfiguration(section: string) {
        return {
            get<T>(key: string, fallback?: T): T | undefined {
                const value = state.settings[`${section}.${key}`];
                return value === undefined ? fallback : (value as T);
            },
        };
    },
    onDidChangeConfiguration: configurationChanged.event,
    async openTextDocument(options: { language: string; content: string }) {
        state.opened.push(options);
        return options;
    },
};

export const window = {
    activeTextEditor: undefined as FakeEditor | undefined,
    createOutputChannel(name: string): OutputChannel {
        const channel = new OutputChannel(name);
        state.channels.push(channel);
        return channel;
    },
    async showInformationMessage(text: string) {
        state.messages.push(['info', text]);
    },
    async showErrorMessage(text: string) {
        state.messages.push(['error', text]);
    },
    async showTextDocument() {},
};

export const commands = {
    registerCommand(id: string, callback: (...args: unknown[]) => unknown): Disposable {
        state.commands.set(id, callback);
        return new Disposable(() => state.commands.delete(id));
    },
    async executeCommand(id: string, ...args: unknown[]) {
        return state.commands.get(id)?.(...args);
    },
};

export const extensions = {
    getExtension(id: string) {
        return state.extensions[id];
    },
};

/** What VS Code does when the user edits settings: new values, then the change event. */
export function changeSettings(values: Record<string, unknown>): Promise<void> {
    Object.assign(state.settings, values);
    const keys = Object.keys(values);
    return configurationChanged.fire({
        affectsConfiguration: (section) => keys.some((k) => k === section || k.startsWith(`${section}.`)),
    });
}

export function reset(): void {
    state.settings = {};
    state.messages = [];
    state.opened = [];
    state.channels = [];
    state.commands.clear();
    state.extensions = {};
    window.activeTextEditor = undefined;
    workspace.workspaceFolders = undefined;
}
