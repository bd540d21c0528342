// Lets vscode-languageclient load outside VS Code, to read the client capabilities it would send.
//
// The `vscode` module exists only inside the editor. Every property of this stand-in is another
// stand-in, so the client's feature classes load and `computeClientCapabilities()` -- plain objects built
// from protocol constants -- runs unchanged: the capabilities below are the ones this extension's
// vscode-languageclient version really advertises, not a hand-written copy.
'use strict';

const Module = require('module');

const VSCODE_VERSION = '1.95.3';

/** Any API: every property is another stand-in; calls return stand-ins (usable as Disposables). */
function standIn(name) {
    const target = function () {};
    return new Proxy(target, {
        get(_target, property) {
            if (property === 'version') return VSCODE_VERSION;
            if (property === 'then' || typeof property === 'symbol') return undefined;
            if (property === 'dispose') return () => {};
            return standIn(`${name}.${String(property)}`);
        },
        apply: () => standIn(`${name}()`),
        construct: () => standIn(`new ${name}`),
    });
}

let installed = false;

function installVscodeStub() {
    if (installed) return;
    installed = true;
    const vscode = standIn('vscode');
    const load = Module._load;
    Module._load = function (request, ...rest) {
        return request === 'vscode' ? vscode : load.call(this, request, ...rest);
    };
}

/** The `capabilities` of VS Code's `initialize` request, as computed by vscode-languageclient itself. */
function vscodeClientCapabilities() {
    installVscodeStub();
    const { LanguageClient } = require('vscode-languageclient/node');
    const client = new LanguageClient('codegenLsp', 'CodeGen LSP', { command: 'unused' }, {
        documentSelector: [{ scheme: 'file', language: 'python' }],
    });
    return client.computeClientCapabilities();
}

module.exports = { VSCODE_VERSION, installVscodeStub, standIn, vscodeClientCapabilities };
