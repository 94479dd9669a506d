// The language server process: `python -P -m server` under the chosen interpreter, through
// vscode-languageclient. Started, restarted (another interpreter, or the Restart command) and
// stopped here; settings changes are sent to the running server instead of restarting it.
import { LogOutputChannel } from 'vscode';
import {
    Executable,
    LanguageClient,
    LanguageClientOptions,
    RevealOutputChannelOn,
} from 'vscode-languageclient/node';
import { SERVER_ARGS, SERVER_ID, SERVER_NAME, SETTINGS_SECTION } from './constants';
import { traceError, traceInfo } from './log';
import { ServerSettings } from './settings';

/** How to start the server: read again at every (re)start. */
export interface Launch {
    interpreter: string[]; // the Python and its arguments
    settings: () => ServerSettings;
    cwd?: string;
}

export function serverOptions(launch: Launch): Executable {
    const [command, ...args] = launch.interpreter;
    return { command, args: [...args, ...SERVER_ARGS], options: { cwd: launch.cwd, env: { ...process.env } } };
}

export function clientOptions(channel: LogOutputChannel, launch: Launch): LanguageClientOptions {
    return {
        documentSelector: [{ scheme: 'file', language: 'python' }], // fixes need the file on disk
        outputChannel: channel, // the server's log messages and stderr
        revealOutputChannelOn: RevealOutputChannelOn.Never,
        // a function, so that a server the client restarts after a crash gets today's settings
        initializationOptions: () => launch.settings(),
    };
}

export class CoeditServer {
    client: LanguageClient | undefined;
    private queue: Promise<void> = Promise.resolve();

    constructor(
        private readonly channel: LogOutputChannel,
        private readonly launch: () => Promise<Launch | undefined>,
    ) {}

    /** Stop the running server (if any) and start one; calls run one after another. */
    restart(): Promise<void> {
        this.queue = this.queue.then(() => this.replace());
        return this.queue;
    }

    async stop(): Promise<void> {
        const client = this.client;
        this.client = undefined;
        if (client) {
            try {
                await client.stop();
            } catch (e) {
                traceError(`Stopping the server failed: ${e}`);
            }
        }
    }

    /** The current settings to the running server (it applies them to the next fix). */
    async sendSettings(settings: ServerSettings): Promise<void> {
        if (this.client?.isRunning()) {
            await this.client.sendNotification('workspace/didChangeConfiguration', {
                settings: { [SETTINGS_SECTION]: settings },
            });
        }
    }

    private async replace(): Promise<void> {
        await this.stop();
        const launch = await this.launch();
        if (!launch) {
            return; // the reason was logged and shown
        }
        const server = serverOptions(launch);
        traceInfo(`Starting the server: ${[server.command, ...(server.args ?? [])].join(' ')}`);
        const client = new LanguageClient(SERVER_ID, SERVER_NAME, server, clientOptions(this.channel, launch));
        try {
            await client.start();
            this.client = client;
        } catch (e) {
            traceError(`The server did not start: ${e}. Is coedit installed in ${launch.interpreter[0]}? ` +
                'Set "coedit.interpreter" to a Python that has it (pip install -e PATH_TO_COEDIT).');
        }
    }
}
