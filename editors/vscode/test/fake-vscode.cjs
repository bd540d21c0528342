// A stand-in for the `vscode` module, faithful where the extension and vscode-languageclient read data back
// (configuration, documents, positions, inline completion items) and inert elsewhere.
//
// It lets the real extension (out/extension.js) activate in Node with the real vscode-languageclient:
// activation starts the real server, opens a document, and the inline completion provider the client
// registers with `languages` can be called as VS Code would call it.
'use strict';

const Module = require('module');
const path = require('path');
const { pathToFileURL } = require('url');

const { VSCODE_VERSION, standIn } = require('./vscode-stub.cjs');

class Disposable {
    constructor(onDispose) {
        this.onDispose = onDispose;
    }
    static from(...disposables) {
        return new Disposable(() => disposables.forEach((d) => d?.dispose?.()));
    }
    dispose() {
        this.onDispose?.();
        this.onDispose = undefined;
    }
}

class EventEmitter {
    constructor() {
        this.listeners = new Set();
        this.event = (listener, thisArg) => {
            const bound = thisArg ? listener.bind(thisArg) : listener;
            this.listeners.add(bound);
            return new Disposable(() => this.listeners.delete(bound));
        };
    }
    fire(value) {
        for (const listener of [...this.listeners]) listener(value);
    }
    dispose() {
        this.listeners.clear();
    }
}

class Position {
    constructor(line, character) {
        this.line = line;
        this.character = character;
    }
}

class Range {
    constructor(a, b, c, d) {
        [this.start, this.end] = typeof a === 'number' ? [new Position(a, b), new Position(c, d)] : [a, b];
    }
}

class SnippetString {
    constructor(value) {
        this.value = value;
    }
}

class InlineCompletionItem {
    constructor(insertText, range, command) {
        this.insertText = insertText;
        this.range = range;
        this.command = command;
    }
}

class InlineCompletionList {
    constructor(items) {
        this.items = items;
    }
}

class ThemeColor {
    constructor(id) {
        this.id = id;
    }
}

/** A status bar item that keeps what the extension set, for the tests to read. */
function statusBarItem(id, alignment, priority) {
    return { id, alignment, priority, text: '', tooltip: undefined, command: undefined, visible: false,
        show() { this.visible = true; }, hide() { this.visible = false; }, dispose() { this.visible = false; } };
}

class Uri {
    constructor(scheme, fsPath) {
        this.scheme = scheme;
        this.fsPath = fsPath;
        this.path = fsPath;
    }
    static file(fsPath) {
        return new Uri('file', path.resolve(fsPath));
    }
    static parse(text) {
        const url = new URL(text);
        return new Uri(url.protocol.replace(/:$/, ''), decodeURIComponent(url.pathname));
    }
    toString() {
        return pathToFileURL(this.fsPath).href;
    }
    toJSON() {
        return this.toString();
    }
}

/** A TextDocument over a fixed text (the tests change documents only through the client's own requests). */
function textDocument(fsPath, languageId, text, version = 1) {
    return {
        uri: Uri.file(fsPath),
        fileName: fsPath,
        languageId,
        version,
        isClosed: false,
        isDirty: false,
        isUntitled: false,
        eol: 1,
        lineCount: text.split('\n').length,
        getText: () => text,
    };
}

function matchesSelector(selector, document) {
    const filters = Array.isArray(selector) ? selector : [selector];
    return filters.some((filter) =>
        typeof filter === 'string'
            ? filter === document.languageId
            : (!filter.language || filter.language === document.languageId) &&
              (!filter.scheme || filter.scheme === document.uri.scheme),
    );
}

/** The fake module, plus handles for the test: what was registered, shown and logged. */
function createFakeVscode(settings) {
    const seen = {
        commands: new Map(),
        inlineProviders: [],
        statusItems: [],
        messages: [],
        output: [],
        configurationListeners: new EventEmitter(),
        documents: [],
    };
    const configuration = (section) => ({
        get(key, fallback) {
            const full = section ? `${section}.${key}` : key;
            return full in settings ? settings[full] : fallback;
        },
        has: (key) => `${section}.${key}` in settings,
        inspect: () => undefined,
        update: async () => {},
    });
    const outputChannel = (name) => {
        const write = (level) => (message) => seen.output.push(`[${name}] ${level} ${message}`);
        return {
            name,
            logLevel: 2,
            onDidChangeLogLevel: new EventEmitter().event,
            append: write('append'),
            appendLine: write('line'),
            replace: write('replace'),
            trace: write('trace'),
            debug: write('debug'),
            info: write('info'),
            warn: write('warn'),
            error: write('error'),
            clear() {},
            show() {},
            hide() {},
            dispose() {},
        };
    };
    const message = (kind) => async (text) => {
        seen.messages.push({ kind, text });
        return undefined;
    };
    const explicit = {
        version: VSCODE_VERSION,
        Disposable,
        EventEmitter,
        Position,
        Range,
        SnippetString,
        InlineCompletionItem,
        InlineCompletionList,
        Uri,
        InlineCompletionTriggerKind: { Invoke: 0, Automatic: 1 },
        StatusBarAlignment: { Left: 1, Right: 2 },
        ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
        ThemeColor,
        env: { appName: 'Visual Studio Code', language: 'en', machineId: 'test', sessionId: 'test', uiKind: 1 },
        workspace: {
            workspaceFolders: undefined,
            get textDocuments() {
                return seen.documents;
            },
            getConfiguration: configuration,
            onDidChangeConfiguration: seen.configurationListeners.event,
            onDidOpenTextDocument: new EventEmitter().event,
            onDidCloseTextDocument: new EventEmitter().event,
            onDidChangeTextDocument: new EventEmitter().event,
            onDidSaveTextDocument: new EventEmitter().event,
            onWillSaveTextDocument: new EventEmitter().event,
            onDidChangeWorkspaceFolders: new EventEmitter().event,
        },
        window: {
            activeTextEditor: undefined,
            visibleTextEditors: [],
            tabGroups: { all: [], onDidChangeTabs: new EventEmitter().event },
            createOutputChannel: outputChannel,
            createStatusBarItem: (id, alignment, priority) => {
                const item = statusBarItem(id, alignment, priority);
                seen.statusItems.push(item);
                return item;
            },
            showQuickPick: async (items) => {
                seen.quickPicks = [...(seen.quickPicks ?? []), items];
                return seen.pick?.(items);
            },
            showErrorMessage: message('error'),
            showWarningMessage: message('warning'),
            showInformationMessage: message('info'),
            onDidChangeActiveTextEditor: new EventEmitter().event,
            onDidChangeVisibleTextEditors: new EventEmitter().event,
            withProgress: (_options, task) => task({ report() {} }, { isCancellationRequested: false, onCancellationRequested: () => new Disposable() }),
        },
        languages: {
            match: (selector, document) => (matchesSelector(selector, document) ? 10 : 0),
            registerInlineCompletionItemProvider: (selector, provider) => {
                const entry = { selector, provider, disposed: false };
                seen.inlineProviders.push(entry);
                return new Disposable(() => {
                    entry.disposed = true;
                });
            },
        },
        commands: {
            registerCommand: (id, handler) => {
                seen.commands.set(id, handler);
                return new Disposable(() => seen.commands.delete(id));
            },
            executeCommand: async () => undefined,
        },
    };
    const namespaces = new Set(['workspace', 'window', 'languages', 'commands', 'env']);
    const withFallback = (object, name) =>
        new Proxy(object, {
            get: (target, property) =>
                property in target || typeof property === 'symbol' ? target[property] : standIn(`${name}.${String(property)}`),
        });
    const module = {};
    for (const [key, value] of Object.entries(explicit)) {
        module[key] = namespaces.has(key) ? withFallback(value, key) : value;
    }
    return { vscode: withFallback(module, 'vscode'), seen, textDocument };
}

/** Make `require('vscode')` return `vscode` from now on. */
function installFakeVscode(vscode) {
    const load = Module._load;
    Module._load = function (request, ...rest) {
        return request === 'vscode' ? vscode : load.call(this, request, ...rest);
    };
}

module.exports = { VSCODE_VERSION, createFakeVscode, installFakeVscode, Position, textDocument };
