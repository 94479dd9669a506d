// The few VS Code API calls the extension makes, wrapped so that the rest reads as plain code
// (and so that the unit tests' stub of `vscode` stays small).
import {
    commands,
    ConfigurationChangeEvent,
    Disposable,
    LogOutputChannel,
    TextEditor,
    window,
    workspace,
    WorkspaceConfiguration,
    WorkspaceFolder,
} from 'vscode';
import { SETTINGS_SECTION } from './constants';

export function createOutputChannel(name: string): LogOutputChannel {
    return window.createOutputChannel(name, { log: true });
}

export function getConfiguration(): WorkspaceConfiguration {
    return workspace.getConfiguration(SETTINGS_SECTION, firstWorkspaceFolder()?.uri);
}

export function firstWorkspaceFolder(): WorkspaceFolder | undefined {
    return workspace.workspaceFolders?.[0];
}

export function registerCommand(command: string, callback: (...args: unknown[]) => unknown): Disposable {
    return commands.registerCommand(command, callback);
}

export function onDidChangeConfiguration(listener: (e: ConfigurationChangeEvent) => unknown): Disposable {
    return workspace.onDidChangeConfiguration(listener);
}

export function activeEditor(): TextEditor | undefined {
    return window.activeTextEditor;
}

export function showInformation(message: string): void {
    void window.showInformationMessage(message);
}

export function showError(message: string): void {
    void window.showErrorMessage(message);
}

export async function openMarkdown(content: string): Promise<void> {
    const document = await workspace.openTextDocument({ language: 'markdown', content });
    await window.showTextDocument(document, { preview: true });
}
