// A stand-in for `vscode-languageclient/node` (the real one needs VS Code): records the clients the
// extension makes, what it sends, and answers requests as a test says.

export enum RevealOutputChannelOn {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
    Never = 4,
}

export interface Executable {
    command: string;
    args?: string[];
    options?: { cwd?: string; env?: Record<string, string | undefined> };
}

export interface LanguageClientOptions {
    documentSelector?: { scheme: string; language: string }[];
    initializationOptions?: unknown | (() => unknown);
    revealOutputChannelOn?: RevealOutputChannelOn;
    outputChannel?: unknown;
}

export class LanguageClient {
    static created: LanguageClient[] = [];
    static startError: Error | undefined; // start() fails with it (e.g. no such interpreter)
    static answer: (method: string, params: unknown) => unknown = () => null;

    events: string[] = []; // 'start', 'stop', in order
    requests: { method: string; params: unknown }[] = [];
    notifications: { method: string; params: unknown }[] = [];
    private running = false;

    constructor(
        readonly id: string,
        readonly name: string,
        readonly serverOptions: Executable,
        readonly clientOptions: LanguageClientOptions,
    ) {
        LanguageClient.created.push(this);
    }

    async start(): Promise<void> {
        this.events.push('start');
        if (LanguageClient.startError) {
            throw LanguageClient.startError;
        }
        this.running = true;
    }

    async stop(): Promise<void> {
        this.events.push('stop');
        this.running = false;
    }

    isRunning(): boolean {
        return this.running;
    }

    async sendRequest<R>(method: string, params: unknown): Promise<R> {
        this.requests.push({ method, params });
        return LanguageClient.answer(method, params) as R;
    }

    async sendNotification(method: string, params: unknown): Promise<void> {
        this.notifications.push({ method, params });
    }

    static reset(): void {
        LanguageClient.created = [];
        LanguageClient.startError = undefined;
        LanguageClient.answer = () => null;
    }
}
