// The extension's own log lines, in the same output channel as the server's log.
import * as util from 'util';
import { Disposable, LogOutputChannel } from 'vscode';

let channel: LogOutputChannel | undefined;

export function registerLogger(output: LogOutputChannel): Disposable {
    channel = output;
    return { dispose: () => (channel = undefined) };
}

export function traceInfo(...data: unknown[]): void {
    channel?.info(util.format(...data));
}

export function traceWarn(...data: unknown[]): void {
    channel?.warn(util.format(...data));
}

export function traceError(...data: unknown[]): void {
    channel?.error(util.format(...data));
}
