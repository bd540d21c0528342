// The real server, driven the way VS Code drives it: vscode-languageserver-protocol (the stack under
// vscode-languageclient), the capabilities this extension's client computes, the settings the extension
// builds from package.json, and VS Code's message sequence. The ghost text must equal
// `codegen-lsp complete --json` for the same file and position.
//
// tests/test_editor_vscode.py writes the case and sets CODEGEN_LSP_TEST_CASE; without it this skips.
'use strict';

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const { pathToFileURL } = require('node:url');

const { VSCODE_VERSION, installVscodeStub, vscodeClientCapabilities } = require('./vscode-stub.cjs');

const CASE_FILE = process.env.CODEGEN_LSP_TEST_CASE;
const skip = CASE_FILE ? false : 'set CODEGEN_LSP_TEST_CASE (tests/test_editor_vscode.py does)';
const TIMEOUT_MS = 90_000;

function loadCase() {
    return JSON.parse(fs.readFileSync(CASE_FILE, 'utf8'));
}

/** The settings the extension would send, from package.json's defaults plus the person's `overrides`. */
function extensionSettings(overrides) {
    const { serverSettingKeys, serverSettings, SECTION } = require('../out/settings.js');
    const packageJson = require('../package.json');
    const properties = packageJson.contributes.configuration.properties;
    const keys = serverSettingKeys(packageJson);
    const settings = serverSettings(keys, (key) =>
        key in overrides ? overrides[key] : properties[`${SECTION}.${key}`].default,
    );
    return { keys, settings, SECTION };
}

/** LSP offset of (line, character) in UTF-16 code units, which JS strings index natively. */
function offsetAt(text, position) {
    let offset = 0;
    for (let line = 0; line < position.line; line++) {
        const next = text.indexOf('\n', offset);
        assert.notEqual(next, -1, `line ${position.line} is past the end of the document`);
        offset = next + 1;
    }
    return offset + position.character;
}

function applyEdit(text, range, newText) {
    return text.slice(0, offsetAt(text, range.start)) + newText + text.slice(offsetAt(text, range.end));
}

function positionAt(text, offset) {
    const before = text.slice(0, offset).split('\n');
    return { line: before.length - 1, character: before[before.length - 1].length };
}

function withTimeout(promise, ms, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A started server and the bookkeeping VS Code's client would do for it. */
function startServer(command, cwd) {
    const rpc = require('vscode-languageserver-protocol/node');
    const child = spawn(command[0], command.slice(1), { cwd, env: process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (data) => {
        stderr += data.toString();
    });
    const connection = rpc.createProtocolConnection(
        new rpc.StreamMessageReader(child.stdout),
        new rpc.StreamMessageWriter(child.stdin),
    );
    const messages = [];
    const registrations = [];
    const session = { child, connection, messages, registrations, stderr: () => stderr, configurationSettings: null };
    connection.onNotification(rpc.ShowMessageNotification.type, (params) => messages.push(params));
    connection.onNotification(rpc.LogMessageNotification.type, () => {});
    connection.onNotification(rpc.PublishDiagnosticsNotification.type, () => {});
    connection.onProgress(rpc.WorkDoneProgress.type, '', () => {});
    connection.onNotification('$/progress', () => {});
    connection.onNotification('$/logTrace', () => {});
    connection.onRequest(rpc.WorkDoneProgressCreateRequest.type, () => null);
    connection.onRequest(rpc.ShowMessageRequest.type, (params) => {
        messages.push(params);
        return null;
    });
    connection.onRequest(rpc.RegistrationRequest.type, (params) => {
        registrations.push(...params.registrations.map((r) => r.method));
        return null;
    });
    connection.onRequest(rpc.UnregistrationRequest.type, () => null);
    connection.onRequest(rpc.ConfigurationRequest.type, (params) =>
        // What the extension's middleware answers: our section gets the server settings only.
        params.items.map((item) => (item.section === 'codegenLsp' ? session.configurationSettings : null)),
    );
    connection.listen();
    return session;
}

async function stopServer(session) {
    const { connection, child } = session;
    const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    try {
        await withTimeout(connection.sendRequest('shutdown'), 10_000, 'shutdown');
        await connection.sendNotification('exit');
        return await withTimeout(exited, 10_000, 'server exit after "exit"');
    } finally {
        connection.dispose();
        if (child.exitCode === null) child.kill();
    }
}

/** Asks until the model has loaded and answers; VS Code asks again on each keystroke, this in a loop. */
async function askUntilAnswered(ask, deadline) {
    for (;;) {
        const result = await ask();
        const items = Array.isArray(result) ? result : result?.items ?? [];
        if (items.length > 0 || Date.now() > deadline) return items;
        await sleep(250);
    }
}

function insertTextOf(item) {
    return typeof item.insertText === 'string' ? item.insertText : item.insertText.value;
}

test('the extension module loads against vscode-languageclient', { skip: false }, () => {
    installVscodeStub();
    const extension = require('../out/extension.js');
    assert.equal(typeof extension.activate, 'function');
    assert.equal(typeof extension.deactivate, 'function');
});

test('settings sent by the extension are exactly the server settings', { skip }, () => {
    const c = loadCase();
    const { keys, settings } = extensionSettings(c.settings);
    assert.deepEqual([...keys].sort(), [...c.settingKeys].sort());
    assert.deepEqual(Object.keys(settings).sort(), [...c.settingKeys].sort());
});

test('ghost text through the VS Code protocol stack equals the CLI completion', { skip, timeout: TIMEOUT_MS }, async () => {
    const rpc = require('vscode-languageserver-protocol/node');
    const c = loadCase();
    const { settings, SECTION } = extensionSettings(c.settings);
    const workspace = path.dirname(c.path);
    const uri = pathToFileURL(c.path).href;
    const deadline = Date.now() + TIMEOUT_MS - 15_000;
    const session = startServer(c.server, workspace);
    session.configurationSettings = settings;
    const { connection } = session;
    try {
        const capabilities = vscodeClientCapabilities();
        assert.deepEqual(capabilities.textDocument.inlineCompletion, { dynamicRegistration: true });
        const result = await withTimeout(
            connection.sendRequest(rpc.InitializeRequest.type, {
                processId: process.pid,
                clientInfo: { name: 'Visual Studio Code', version: VSCODE_VERSION },
                locale: 'en',
                rootPath: workspace,
                rootUri: pathToFileURL(workspace).href,
                capabilities,
                initializationOptions: settings,
                trace: 'off',
                workspaceFolders: [{ uri: pathToFileURL(workspace).href, name: path.basename(workspace) }],
            }),
            30_000,
            'initialize',
        );
        const server = result.capabilities;
        // vscode-languageclient throws on any other encoding, and registers no provider without these.
        assert.ok([undefined, 'utf-16'].includes(server.positionEncoding), `positionEncoding ${server.positionEncoding}`);
        assert.ok(server.inlineCompletionProvider, 'no inlineCompletionProvider: VS Code would never ask');
        // VS Code asks for completions on almost every keystroke (quick suggestions): were the server to
        // offer them too, each would ask the model again and supersede the ghost text.
        assert.equal(server.completionProvider, undefined, 'completionProvider offered to an inline client');
        await connection.sendNotification(rpc.InitializedNotification.type, {});
        // What the extension sends when a codegenLsp.* setting changes.
        await connection.sendNotification(rpc.DidChangeConfigurationNotification.type, {
            settings: { [SECTION]: settings },
        });

        // Open the file without the end of its cursor line, then type that end one key at a time, asking
        // for ghost text after each key and cancelling the previous ask, as VS Code does.
        const cursor = offsetAt(c.text, { line: c.line, character: c.character });
        const typed = Math.min(3, c.character);
        let text = c.text.slice(0, cursor - typed) + c.text.slice(cursor);
        let version = 1;
        await connection.sendNotification(rpc.DidOpenTextDocumentNotification.type, {
            textDocument: { uri, languageId: 'python', version, text },
        });
        const pending = [];
        let previous;
        for (let i = typed; i > 0; i--) {
            const at = cursor - i;
            const key = c.text[at];
            text = text.slice(0, at) + key + text.slice(at);
            const start = positionAt(text, at);
            await connection.sendNotification(rpc.DidChangeTextDocumentNotification.type, {
                textDocument: { uri, version: ++version },
                contentChanges: [{ range: { start, end: start }, rangeLength: 0, text: key }],
            });
            previous?.cancel();
            previous = new rpc.CancellationTokenSource();
            pending.push(
                connection.sendRequest(
                    rpc.InlineCompletionRequest.type,
                    {
                        textDocument: { uri },
                        position: positionAt(text, at + 1),
                        context: { triggerKind: rpc.InlineCompletionTriggerKind.Automatic },
                    },
                    previous.token,
                ),
            );
        }
        assert.equal(text, c.text);
        // Every ask is answered, superseded ones included (with a result or a cancellation error).
        const settled = await withTimeout(Promise.allSettled(pending), 60_000, 'answers to superseded asks');
        for (const outcome of settled) {
            if (outcome.status === 'rejected') {
                assert.equal(outcome.reason.code, rpc.LSPErrorCodes.RequestCancelled, String(outcome.reason));
            }
        }

        const position = { line: c.line, character: c.character };
        const items = await askUntilAnswered(
            () =>
                connection.sendRequest(rpc.InlineCompletionRequest.type, {
                    textDocument: { uri },
                    position,
                    context: { triggerKind: rpc.InlineCompletionTriggerKind.Automatic },
                }),
            deadline,
        );
        assert.ok(items.length > 0, 'no inline completion before the deadline');
        const expectedText = c.text.slice(0, cursor) + c.completion + c.text.slice(cursor);
        // VS Code replaces the item's range (the cursor when absent) with insertText.
        const item = items[0];
        assert.equal(applyEdit(c.text, item.range ?? { start: position, end: position }, insertTextOf(item)), expectedText);
        if (item.range === undefined || offsetAt(c.text, item.range.start) === cursor) {
            assert.equal(insertTextOf(item), c.completion);
        }

        const problems = session.messages.filter((m) => m.type <= rpc.MessageType.Warning);
        assert.deepEqual(problems, [], 'the server showed errors or warnings');
        assert.equal(await stopServer(session), 0, 'server exit code');
    } catch (error) {
        error.message += `\n--- server stderr ---\n${session.stderr().slice(-4000)}`;
        throw error;
    } finally {
        if (session.child.exitCode === null) session.child.kill();
    }
});
