// The extension itself (out/extension.js) activated in Node against a fake `vscode` module and the real
// vscode-languageclient: it starts the real server from codegenLsp.serverCommand / serverArgs with the
// settings as initializationOptions, and the inline completion provider the client registers answers
// with the CLI's completion. A settings change reaches the server; the restart command restarts it.
//
// tests/test_editor_vscode.py writes the case and sets CODEGEN_LSP_TEST_CASE; without it this skips.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const { test } = require('node:test');

const { Position, createFakeVscode, installFakeVscode } = require('./fake-vscode.cjs');

const CASE_FILE = process.env.CODEGEN_LSP_TEST_CASE;
const skip = CASE_FILE ? false : 'set CODEGEN_LSP_TEST_CASE (tests/test_editor_vscode.py does)';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(condition, describe, seconds = 60) {
    const deadline = Date.now() + seconds * 1000;
    while (!condition()) {
        if (Date.now() > deadline) assert.fail(`waited ${seconds} s: ${describe()}`);
        await sleep(50);
    }
}
const token = { isCancellationRequested: false, onCancellationRequested: () => ({ dispose() {} }) };

/** What VS Code would hold for the person's settings.json: package.json defaults, then their values. */
function userSettings(c) {
    const packageJson = require('../package.json');
    const settings = {};
    for (const [key, property] of Object.entries(packageJson.contributes.configuration.properties)) {
        settings[key] = property.default;
    }
    for (const [key, value] of Object.entries(c.settings)) {
        settings[`codegenLsp.${key}`] = value;
    }
    settings['codegenLsp.serverCommand'] = c.server[0];
    settings['codegenLsp.serverArgs'] = c.server.slice(1);
    return settings;
}

/** Ask the newest inline provider, as VS Code does while typing, until the model has loaded and answers. */
async function ghostText(seen, document, position, seconds = 60) {
    const deadline = Date.now() + seconds * 1000;
    for (;;) {
        const live = seen.inlineProviders.filter((p) => !p.disposed);
        assert.equal(live.length, 1, 'exactly one live inline completion provider');
        const result = await live[0].provider.provideInlineCompletionItems(
            document,
            position,
            { triggerKind: 1 /* Automatic */, selectedCompletionInfo: undefined },
            token,
        );
        const items = Array.isArray(result) ? result : result?.items ?? [];
        if (items.length > 0) return items[0];
        if (Date.now() > deadline) assert.fail('no inline completion before the deadline');
        await sleep(250);
    }
}

test('the extension activates, starts the server and shows its ghost text', { skip, timeout: 120_000 }, async () => {
    const c = JSON.parse(fs.readFileSync(CASE_FILE, 'utf8'));
    const settings = userSettings(c);
    const { vscode, seen, textDocument } = createFakeVscode(settings);
    installFakeVscode(vscode);
    const document = textDocument(c.path, 'python', c.text);
    seen.documents.push(document); // open before activation, as when VS Code restores a window
    vscode.window.activeTextEditor = { document }; // the one the person looks at (the status item's menu)
    const extension = require('../out/extension.js');
    const context = { subscriptions: [], extension: { packageJSON: require('../package.json') } };
    const position = new Position(c.line, c.character);
    try {
        await extension.activate(context);
        assert.ok(seen.commands.has('codegenLsp.restartServer'), 'no restart command');
        assert.equal(seen.inlineProviders.length, 1, 'the client registered no inline completion provider');

        const item = await ghostText(seen, document, position);
        assert.equal(item.insertText, c.completion);
        assert.ok(item.range === undefined || (item.range.start.line === c.line && item.range.start.character === c.character));

        // Next/previous suggestion (Alt+] / Alt+[): VS Code asks again with `Invoke`, and the extension asks the
        // server for alternatives (codegenLsp/inlineCompletion): the shown candidate first, then others.
        const provider = seen.inlineProviders.filter((p) => !p.disposed)[0].provider;
        const invoked = { triggerKind: 0 /* Invoke */, selectedCompletionInfo: undefined };
        const cycled = await provider.provideInlineCompletionItems(document, position, invoked, token);
        const texts = (Array.isArray(cycled) ? cycled : cycled.items).map((i) => i.insertText);
        assert.equal(texts[0], c.completion, 'the candidate shown comes first');
        assert.ok(texts.length >= 2 && new Set(texts).size === texts.length, `no distinct second candidate: ${JSON.stringify(texts)}`);
        await waitFor(() => /#\d+ alternatives example\.py:/.test(seen.output.join('\n')), () => 'no alternatives request in the log');
        const typing = seen.output.filter((line) => / #\d+ (inline|alternatives) example\.py:/.test(line));
        assert.match(typing[0], / #\d+ inline example\.py:/, 'typing (Automatic) asks textDocument/inlineCompletion');

        // The status bar item shows the server's status; the toggle command turns completions off there, and
        // the extension then sends no request at all (the server's log has none between off and on).
        const [statusItem] = seen.statusItems;
        assert.ok(statusItem.visible, 'the status item is hidden');
        assert.equal(statusItem.command, 'codegenLsp.statusMenu');
        await waitFor(() => statusItem.text === '$(check) CodeGen', () => `status item: ${statusItem.text}`);
        assert.match(statusItem.tooltip, /^CodeGen LSP: ready\nModel: .*codegen-tiny\nDevice: cpu\nDtype: float32\n/);
        await seen.commands.get('codegenLsp.toggle')();
        assert.equal(statusItem.text, '$(circle-slash) CodeGen off');
        const automatic = { triggerKind: 1, selectedCompletionInfo: undefined };
        assert.equal(await provider.provideInlineCompletionItems(document, position, automatic, token), undefined);
        assert.equal(await provider.provideInlineCompletionItems(document, position, invoked, token), undefined);
        await seen.commands.get('codegenLsp.toggle')();
        assert.equal(statusItem.text, '$(check) CodeGen');
        assert.equal((await ghostText(seen, document, position)).insertText, c.completion);
        const log = seen.output.join('\n');
        const between = log.slice(log.lastIndexOf('switches: completions off'), log.lastIndexOf('switches: completions on'));
        assert.ok(between.startsWith('switches: completions off'), 'the server logged no toggle');
        assert.doesNotMatch(between, /inline|alternatives|switched off/, 'a request reached the server while off');

        // The menu behind the item offers the switches for this document, then output, restart, health check.
        seen.pick = (items) => items.find((i) => i.label.includes('Disable for python'));
        await seen.commands.get('codegenLsp.statusMenu')();
        assert.equal(statusItem.text, '$(circle-slash) CodeGen off (python)');
        assert.equal(await provider.provideInlineCompletionItems(document, position, automatic, token), undefined);
        seen.pick = (items) => items.find((i) => i.label.includes('Enable for python'));
        await seen.commands.get('codegenLsp.statusMenu')();
        assert.equal(statusItem.text, '$(check) CodeGen');
        assert.deepEqual(seen.quickPicks[0].map((i) => i.label), [
            '$(circle-slash) Disable completions',
            '$(circle-slash) Disable for python',
            '$(circle-slash) Disable for this file',
            '$(clock) Snooze for 30 minutes',
            '$(output) Show output',
            '$(debug-restart) Restart server',
            '$(pulse) Run health check',
        ]);

        // A setting changes: the extension sends it; greedy decoding with fewer tokens gives a prefix.
        settings['codegenLsp.maxNewTokens'] = 3;
        seen.configurationListeners.fire({ affectsConfiguration: (s) => s === 'codegenLsp' || s === 'codegenLsp.maxNewTokens' });
        let shorter;
        for (let i = 0; i < 40; i++) {
            shorter = (await ghostText(seen, document, position)).insertText;
            if (shorter !== c.completion) break;
            await sleep(100);
        }
        assert.ok(shorter.length < c.completion.length && c.completion.startsWith(shorter),
            `after maxNewTokens 3: ${JSON.stringify(shorter)} is not a shorter prefix of ${JSON.stringify(c.completion)}`);

        // The restart command: a new server (and provider) with the current settings.
        settings['codegenLsp.maxNewTokens'] = c.settings.maxNewTokens;
        await seen.commands.get('codegenLsp.restartServer')();
        assert.equal(seen.inlineProviders.filter((p) => !p.disposed).length, 1);
        assert.equal((await ghostText(seen, document, position)).insertText, c.completion);

        // The server's log lines keep their level in the output channel (not all "error").
        assert.ok(seen.output.some((line) => /^\[CodeGen LSP\] info codegen_lsp\.server: initialize from Visual Studio Code/.test(line)),
            'the server log is not in the output channel at info level');
        assert.deepEqual(seen.output.filter((line) => line.startsWith('[CodeGen LSP] error')), []);

        const problems = seen.messages.filter((m) => m.kind !== 'info');
        assert.deepEqual(problems, [], 'VS Code would have shown these messages');
    } catch (error) {
        error.message += `\n--- output channels (tail) ---\n${seen.output.slice(-40).join('\n')}`;
        throw error;
    } finally {
        await extension.deactivate();
    }
});

test('the first cycle asks for 3 candidates, or codegenLsp.numCandidates where that is more', () => {
    installFakeVscode(createFakeVscode({}).vscode);
    const { alternativesCount, wantsAlternatives } = require('../out/alternatives.js');
    assert.deepEqual([undefined, 1, 3, 5, 8, 2.5, '5'].map(alternativesCount), [3, 3, 3, 5, 8, 3, 3]);
    assert.equal(wantsAlternatives({ triggerKind: 0 /* Invoke */ }), true);
    assert.equal(wantsAlternatives({ triggerKind: 1 /* Automatic */ }), false);
});

test('server stderr lines keep their level', () => {
    const { parseServerLine } = require('../out/serverLog.js');
    assert.deepEqual(parseServerLine('2026-01-02 03:04:05,678 codegen-lsp WARNING codegen_lsp.server: slow'), {
        level: 'warn',
        text: 'codegen_lsp.server: slow',
    });
    assert.equal(parseServerLine('2026-01-02 03:04:05,678 codegen-lsp DEBUG x: y').level, 'debug');
    assert.equal(parseServerLine('2026-01-02 03:04:05,678 codegen-lsp CRITICAL x: y').level, 'error');
    assert.deepEqual(parseServerLine('Traceback (most recent call last):'), {
        level: 'warn',
        text: 'Traceback (most recent call last):',
    });
});
