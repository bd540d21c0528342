// Starts codegen-lsp for the languages in `codegenLsp.enabledLanguages` once a document of one of them is open;
// VS Code shows its inline completions as ghost text (Tab accepts). A status bar item shows the server's
// `codegenLsp/status` (loading, ready, busy, off, ...) and opens a menu: on/off, per language or file, snooze,
// output, restart, health check (`codegen-lsp doctor`). The server owns the on/off state; the extension asks
// nothing while the last status says a document is off. Next/previous suggestion (Alt+] / Alt+[) fetches
// alternatives on the first cycle (src/alternatives.ts).
//
// vscode-languageclient >= 10 implements `textDocument/inlineCompletion` (LSP 3.18) as a regular feature.
import * as childProcess from 'child_process';
import * as os from 'os';
import * as readline from 'readline';
import * as vscode from 'vscode';
import {
    DidChangeConfigurationNotification,
    ExecuteCommandRequest,
    LanguageClient,
    LanguageClientOptions,
    ServerOptions,
} from 'vscode-languageclient/node';

import { alternativesCount, provideAlternatives, wantsAlternatives } from './alternatives';
import { logServerLine } from './serverLog';
import {
    DocumentFilter,
    SECTION,
    documentSelector,
    selects,
    serverLaunch,
    serverSettingKeys,
    serverSettings,
} from './settings';
import {
    ActiveDocument,
    MenuEntry,
    NOT_RUNNING,
    STATUS_METHOD,
    ServerStatus,
    allows,
    doctorArgs,
    doctorVerdict,
    menuEntries,
    statusText,
    statusTooltip,
} from './status';
import { TraceChannel, traceLevel } from './traceChannel';

let client: LanguageClient | undefined;
let settingKeys: string[] = [];
let output: vscode.LogOutputChannel;
let trace: TraceChannel;
let health: vscode.OutputChannel;
let statusItem: vscode.StatusBarItem;
let status: ServerStatus | undefined; // the server's last codegenLsp/status; undefined: none heard from this server

const SWITCHES = ['codegenLsp.toggle', 'codegenLsp.setEnabled']; // the server's commands, answered with its status
const DOCTOR_TIMEOUT_MS = 180_000;
const DOCTOR_MAX_BYTES = 1_000_000;

function configuration(): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration(SECTION);
}

function currentSettings(): Record<string, unknown> {
    const config = configuration();
    return serverSettings(settingKeys, (key) => config.get(key));
}

/** Candidates asked for on the first cycle. */
function cycleCandidates(): number {
    return alternativesCount(configuration().get('numCandidates'));
}

function selector(): DocumentFilter[] {
    return documentSelector(configuration().get('enabledLanguages'));
}

function isServed(document: vscode.TextDocument): boolean {
    return selects(selector(), document.uri.scheme, document.languageId);
}

function lines(input: NodeJS.ReadableStream, onLine: (line: string) => void): void {
    readline.createInterface({ input, crlfDelay: Infinity, terminal: false }).on('line', onLine);
}

function createClient(): LanguageClient {
    const config = configuration();
    const launch = serverLaunch((key) => config.get(key), os.homedir());
    const serverOptions: ServerOptions = { command: launch.command, args: launch.args, options: { env: process.env } };
    const clientOptions: LanguageClientOptions = {
        documentSelector: selector(),
        initializationOptions: currentSettings,
        outputChannel: output, // the server's stderr (its log) and window/logMessage land here
        traceOutputChannel: trace,
        stdioOptions: {
            stdout: (input, channel) => lines(input, (line) => channel.info(line)),
            stderr: (input, channel) => lines(input, (line) => logServerLine(channel, line)),
        },
        middleware: {
            // Off for this document (the server's last status says so): VS Code gets nothing, the server no request.
            // Asked by the person (Alt+\, or the first Alt+] / Alt+[ of a suggestion): the alternatives too.
            provideInlineCompletionItems: (document, position, context, token, next) => {
                if (!allows(status, activeDocument(document))) {
                    return undefined;
                }
                return client !== undefined && wantsAlternatives(context)
                    ? provideAlternatives(client, cycleCandidates(), document, position, context, token)
                    : next(document, position, context, token);
            },
            // The client makes VS Code commands of the server's (`codegenLsp.toggle`, `codegenLsp.setEnabled`, for
            // the palette and keybindings); their answer is the new status.
            executeCommand: async (command, args, next) => {
                const answer = await next(command, args);
                if (SWITCHES.includes(command)) {
                    switched(answer as ServerStatus);
                }
                return answer;
            },
            workspace: {
                // Answer a pull for our section with the server's settings only (not serverCommand & co.).
                configuration: async (params, token, next) => {
                    const result = await next(params, token);
                    if (!Array.isArray(result)) {
                        return result;
                    }
                    return params.items.map((item, index) =>
                        item.section === SECTION ? currentSettings() : result[index],
                    );
                },
            },
        },
    };
    const languageClient = new LanguageClient(SECTION, 'CodeGen LSP', serverOptions, clientOptions);
    languageClient.onNotification(STATUS_METHOD, (sent: ServerStatus) => {
        if (client === languageClient) {
            showStatus(sent);
        }
    });
    return languageClient;
}

async function startClient(): Promise<void> {
    const starting = (client = createClient());
    showStatus(undefined);
    try {
        await starting.start();
        askAgainIfTypedBeforeStart();
        showStatus(await starting.sendRequest<ServerStatus>(STATUS_METHOD, null)); // if its first notification came early
    } catch (error) {
        output.error(`Could not start the server: ${String(error)}`);
        void vscode.window
            .showErrorMessage(
                `CodeGen LSP: could not start "${configuration().get('serverCommand')}". ` +
                    'Install it with `pip install codegen-lsp` or set codegenLsp.serverCommand.',
                'Open Settings',
            )
            .then((choice) => {
                if (choice === 'Open Settings') {
                    void vscode.commands.executeCommand('workbench.action.openSettings', `${SECTION}.serverCommand`);
                }
            });
    }
}

/**
 * VS Code asks inline providers on each edit, and none was registered for the keys typed while the server
 * started: without this the first suggestion would wait for the next keystroke. The server answers once
 * its model is ready.
 */
function askAgainIfTypedBeforeStart(): void {
    const editor = vscode.window.activeTextEditor;
    if (editor !== undefined && editor.document.isDirty && isServed(editor.document)) {
        void vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    }
}

/** Start the server with the first served document (at once if one is open already). */
async function startWithFirstServedDocument(context: vscode.ExtensionContext): Promise<void> {
    if (vscode.workspace.textDocuments.some(isServed)) {
        await startClient();
        return;
    }
    const waiting = vscode.workspace.onDidOpenTextDocument((document) => {
        if (client === undefined && isServed(document)) {
            waiting.dispose();
            void startClient();
        }
    });
    context.subscriptions.push(waiting);
}

async function stopClient(): Promise<void> {
    const running = client;
    client = undefined;
    showStatus(undefined);
    if (running !== undefined) {
        try {
            await running.stop();
        } catch (error) {
            output.warn(`Stopping the server: ${String(error)}`);
        }
    }
}

async function restartClient(): Promise<void> {
    await stopClient();
    await startClient();
}

// -- status, on/off, health ------------------------------------------------------------------------------------

function activeDocument(document: vscode.TextDocument): ActiveDocument {
    const uri = client?.code2ProtocolConverter.asUri(document.uri) ?? document.uri.toString();
    return { languageId: document.languageId, uri };
}

function activeServedDocument(): ActiveDocument | undefined {
    const document = vscode.window.activeTextEditor?.document;
    return document !== undefined && isServed(document) ? activeDocument(document) : undefined;
}

/** Render `sent` (undefined: no server, or none heard yet) in the status bar item. */
function showStatus(sent: ServerStatus | undefined): void {
    status = sent;
    const shown = sent ?? (client === undefined ? NOT_RUNNING : { ...NOT_RUNNING, state: 'loading' as const, message: 'starting' });
    const document = activeServedDocument();
    statusItem.text = statusText(shown, document);
    statusItem.tooltip = statusTooltip(shown, document);
    statusItem.backgroundColor =
        shown.state === 'error' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
    if (configuration().get('statusBar') === false) {
        statusItem.hide();
    } else {
        statusItem.show();
    }
}

/** Run one of the server's switches from the menu; its answer is the new status. */
async function serverCommand(command: string, argument?: Record<string, unknown>): Promise<void> {
    if (client === undefined || !client.isRunning()) {
        void vscode.window.showWarningMessage('CodeGen LSP: the server is not running.');
        return;
    }
    const answer = await client.sendRequest(ExecuteCommandRequest.type, {
        command,
        arguments: argument === undefined ? [] : [argument],
    });
    switched(answer as ServerStatus);
}

/** A switch changed: show it, and ask at once when completions are on again (else hide what shows). */
function switched(answer: ServerStatus): void {
    showStatus(answer);
    if (status !== undefined && status.enabled) {
        void vscode.commands.executeCommand('editor.action.inlineSuggest.trigger'); // on again: ask at once
    } else {
        void vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
    }
}

async function openMenu(): Promise<void> {
    const entries = menuEntries(status ?? NOT_RUNNING, activeServedDocument());
    const picked = await vscode.window.showQuickPick<vscode.QuickPickItem & { entry: MenuEntry }>(
        entries.map((entry) => ({ label: entry.label, description: entry.description, entry })),
        { title: `CodeGen LSP: ${status?.message ?? 'not running'}`, placeHolder: 'CodeGen LSP' },
    );
    if (picked === undefined) {
        return;
    }
    const action = picked.entry.action;
    if (action.kind === 'setEnabled') {
        await serverCommand('codegenLsp.setEnabled', action.argument);
    } else {
        await vscode.commands.executeCommand(action.command);
    }
}

/** `codegen-lsp doctor` with the person's settings; its lines in an output channel, its verdict in a message. */
async function healthCheck(): Promise<void> {
    const config = configuration();
    const launch = serverLaunch((key) => config.get(key), os.homedir());
    const args = doctorArgs(currentSettings());
    health.clear();
    health.appendLine(`$ ${launch.command} doctor --settings '…'`);
    health.show(true);
    const stdout = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: 'CodeGen LSP: running codegen-lsp doctor' },
        () =>
            new Promise<string>((resolve) => {
                childProcess.execFile(
                    launch.command,
                    args,
                    { timeout: DOCTOR_TIMEOUT_MS, maxBuffer: DOCTOR_MAX_BYTES, env: process.env },
                    (error, out, err) => {
                        health.append(out);
                        if (err.trim() !== '') {
                            health.appendLine(err.trim());
                        }
                        if (error !== null && out.trim() === '') {
                            health.appendLine(`FAIL doctor: ${error.message}`);
                            resolve(`codegen-lsp doctor: not usable: ${error.message}`);
                        } else {
                            resolve(out);
                        }
                    },
                );
            }),
    );
    const verdict = doctorVerdict(stdout);
    if (verdict.endsWith(': usable')) {
        void vscode.window.showInformationMessage(`CodeGen LSP: ${verdict}`);
    } else {
        void vscode.window.showErrorMessage(`CodeGen LSP: ${verdict}`);
    }
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
    settingKeys = serverSettingKeys(context.extension.packageJSON);
    output = vscode.window.createOutputChannel('CodeGen LSP', { log: true });
    health = vscode.window.createOutputChannel('CodeGen LSP Health');
    statusItem = vscode.window.createStatusBarItem(`${SECTION}.status`, vscode.StatusBarAlignment.Right, 100);
    statusItem.name = 'CodeGen LSP';
    statusItem.command = `${SECTION}.statusMenu`;
    showStatus(undefined);
    trace = new TraceChannel(
        vscode.window.createOutputChannel('CodeGen LSP Trace'),
        traceLevel(configuration().get('trace.server')),
    );
    context.subscriptions.push(
        output,
        trace,
        health,
        statusItem,
        vscode.commands.registerCommand(`${SECTION}.restartServer`, restartClient),
        vscode.commands.registerCommand(`${SECTION}.statusMenu`, openMenu),
        vscode.commands.registerCommand(`${SECTION}.healthCheck`, healthCheck),
        vscode.window.onDidChangeActiveTextEditor(() => showStatus(status)),
        vscode.commands.registerCommand(`${SECTION}.showOutput`, () => output.show(true)),
        vscode.commands.registerCommand(`${SECTION}.showTrace`, () => trace.show(true)),
        vscode.workspace.onDidChangeConfiguration((event) => {
            if (!event.affectsConfiguration(SECTION)) {
                return;
            }
            if (event.affectsConfiguration(`${SECTION}.trace.server`)) {
                trace.setLevel(traceLevel(configuration().get('trace.server')));
            }
            if (event.affectsConfiguration(`${SECTION}.statusBar`)) {
                showStatus(status);
            }
            if (
                event.affectsConfiguration(`${SECTION}.serverCommand`) ||
                event.affectsConfiguration(`${SECTION}.serverArgs`) ||
                event.affectsConfiguration(`${SECTION}.enabledLanguages`)
            ) {
                if (client !== undefined) {
                    void restartClient();
                }
            } else if (client?.isRunning()) {
                void client.sendNotification(DidChangeConfigurationNotification.type, {
                    settings: { [SECTION]: currentSettings() },
                });
            }
        }),
    );
    await startWithFirstServedDocument(context);
}

export function deactivate(): Promise<void> {
    return stopClient();
}
