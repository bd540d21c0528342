// The status bar item's words and menu, from the server's `codegenLsp/status` (out/status.js, no `vscode`).
'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { NOT_RUNNING, allows, doctorVerdict, menuEntries, statusText, statusTooltip } = require('../out/status.js');

const ready = {
    ...NOT_RUNNING,
    state: 'ready',
    message: 'ready',
    model: 'bundled',
    device: 'cpu',
    dtype: 'bfloat16',
    lastLatencyMs: 123.4,
};
const python = { languageId: 'python', uri: 'file:///a.py' };

test('the item says the state in a few words, the tooltip what runs where', () => {
    assert.equal(statusText(ready, python), '$(check) CodeGen');
    assert.equal(statusText({ ...ready, state: 'loading', fraction: 0.42 }), '$(loading~spin) CodeGen 42%');
    assert.equal(statusText({ ...ready, state: 'busy' }), '$(sync~spin) CodeGen');
    assert.equal(statusText({ ...ready, state: 'remoteDown' }), '$(debug-disconnect) CodeGen remote down');
    assert.equal(statusText({ ...ready, state: 'error', message: 'no such folder' }), '$(error) CodeGen error');
    assert.equal(statusText({ ...ready, state: 'disabled', enabled: false }), '$(circle-slash) CodeGen off');
    assert.equal(statusText({ ...ready, state: 'disabled', enabled: false, snoozedUntil: 1 }), '$(circle-slash) CodeGen snoozed');
    assert.equal(statusText({ ...ready, disabledLanguages: ['python'] }, python), '$(circle-slash) CodeGen off (python)');
    assert.equal(statusText({ ...ready, disabledUris: ['file:///a.py'] }, python), '$(circle-slash) CodeGen off (this file)');
    assert.equal(
        statusTooltip(ready, python),
        'CodeGen LSP: ready\nModel: bundled\nDevice: cpu\nDtype: bfloat16\nLast completion: 123 ms\n' +
            'Click for on/off, snooze, output, restart, health check',
    );
});

test('no request while the document is off; none heard yet: the server decides', () => {
    assert.ok(allows(undefined, python));
    assert.ok(allows(ready, python));
    assert.ok(!allows({ ...ready, enabled: false }, python));
    assert.ok(!allows({ ...ready, disabledLanguages: ['python'] }, python));
    assert.ok(allows({ ...ready, disabledLanguages: ['go'] }, python));
    assert.ok(!allows({ ...ready, disabledUris: ['file:///a.py'] }, python));
});

test('the menu offers the switch that applies', () => {
    const labels = (status, document) => menuEntries(status, document).map((e) => e.label);
    assert.deepEqual(labels({ ...ready, enabled: false, snoozedUntil: 5 }, undefined), [
        '$(check) Enable completions',
        '$(output) Show output',
        '$(debug-restart) Restart server',
        '$(pulse) Run health check',
    ]);
    const entries = menuEntries({ ...ready, disabledLanguages: ['python'] }, python);
    assert.deepEqual(entries[1].action, { kind: 'setEnabled', argument: { enabled: true, languageId: 'python' } });
    assert.deepEqual(entries[3].action, { kind: 'setEnabled', argument: { enabled: false, snoozeMinutes: 30 } });
});

test("doctor's verdict is its last line", () => {
    assert.equal(doctorVerdict('OK python: 3.11\ncodegen-lsp doctor: usable\n'), 'codegen-lsp doctor: usable');
});
