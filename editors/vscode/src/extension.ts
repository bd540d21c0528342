// Starts codegen-lsp for the languages in `codegenLsp.enabledLanguages` once a document of one of them is open;
// VS Code shows its inline completions as ghost text (Tab accepts).
//
// vscode-languageclient >= 10 implements `textDocument/inlineCompletion` (LSP 3.18) as a regular feature;
// on 9.x it was a proposed one, which `registerProposedFeatures()` turned on (a no-op now, kept for that).
import * as os from 'os';
import * as readline from 'readline';
import * as vscode from 'vscode';
import {
    DidChangeConfigurationNotification,
    LanguageClient,
    LanguageClientOptions,
    ServerOptions,
} from 'vscode-languageclient/node';

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
import { TraceChannel, traceLevel } from './traceChannel';

let client: LanguageClient | undefined;
let settingKeys: string[] = [];
let output: vscode.LogOutputChannel;
let trace: TraceChannel;

function configuration(): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration(SECTION);
}

function currentSettings(): Record<string, unknown> {
    const config = configuration();
    return serverSettings(settingKeys, (key) => config.get(key));
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
    languageClient.registerProposedFeatures();
    return languageClient;
}

async function startClient(): Promise<void> {
    client = createClient();
    try {
        await client.start();
        askAgainIfTypedBeforeStart();
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

export async function activate(context: vscode.ExtensionContext): Promise<void> {
    settingKeys = serverSettingKeys(context.extension.packageJSON);
    output = vscode.window.createOutputChannel('CodeGen LSP', { log: true });
    trace = new TraceChannel(
        vscode.window.createOutputChannel('CodeGen LSP Trace'),
        traceLevel(configuration().get('trace.server')),
    );
    context.subscriptions.push(
        output,
        trace,
        vscode.commands.registerCommand(`${SECTION}.restartServer`, restartClient),
        vscode.commands.registerCommand(`${SECTION}.showOutput`, () => output.show(true)),
        vscode.commands.registerCommand(`${SECTION}.showTrace`, () => trace.show(true)),
        vscode.workspace.onDidChangeConfiguration((event) => {
            if (!event.affectsConfiguration(SECTION)) {
                return;
            }
            if (event.affectsConfiguration(`${SECTION}.trace.server`)) {
                trace.setLevel(traceLevel(configuration().get('trace.server')));
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
