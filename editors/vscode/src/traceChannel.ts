// The "CodeGen LSP Trace" channel, switched on by `codegenLsp.trace.server` alone.
//
// vscode-languageclient (10+) traces only while its trace channel's *log level* is Trace, and uses
// `<section>.trace.server` just for the detail; with a log channel (`{ log: true }`), whose level a person
// sets with "Developer: Set Log Level", the setting by itself left the channel empty. This channel is a plain
// output channel whose level follows the setting: "off" is Info (no trace), "messages" / "verbose" are Trace.
import * as vscode from 'vscode';

/** The level the client should see for a `trace.server` value. */
export function traceLevel(setting: unknown): vscode.LogLevel {
    return setting === 'messages' || setting === 'verbose' ? vscode.LogLevel.Trace : vscode.LogLevel.Info;
}

export class TraceChannel implements vscode.LogOutputChannel {
    private readonly levelChanged = new vscode.EventEmitter<vscode.LogLevel>();
    readonly onDidChangeLogLevel = this.levelChanged.event;

    constructor(
        private readonly channel: vscode.OutputChannel,
        private level: vscode.LogLevel,
    ) {}

    get name(): string {
        return this.channel.name;
    }

    get logLevel(): vscode.LogLevel {
        return this.level;
    }

    /** Called when `trace.server` changes: the client re-reads the level and turns tracing on or off. */
    setLevel(level: vscode.LogLevel): void {
        if (level !== this.level) {
            this.level = level;
            this.levelChanged.fire(level);
        }
    }

    private write(label: string, message: string | Error, args: unknown[]): void {
        const text = [String(message), ...args.map((arg) => (typeof arg === 'string' ? arg : JSON.stringify(arg)))];
        this.channel.appendLine(`${new Date().toISOString()} [${label}] ${text.join(' ')}`);
    }

    trace(message: string, ...args: unknown[]): void {
        if (this.level === vscode.LogLevel.Trace) {
            this.write('trace', message, args);
        }
    }
    debug(message: string, ...args: unknown[]): void {
        this.write('debug', message, args);
    }
    info(message: string, ...args: unknown[]): void {
        this.write('info', message, args);
    }
    warn(message: string, ...args: unknown[]): void {
        this.write('warning', message, args);
    }
    error(message: string | Error, ...args: unknown[]): void {
        this.write('error', message, args);
    }
    append(value: string): void {
        this.channel.append(value);
    }
    appendLine(value: string): void {
        this.channel.appendLine(value);
    }
    replace(value: string): void {
        this.channel.replace(value);
    }
    clear(): void {
        this.channel.clear();
    }
    show(preserveFocus?: boolean): void;
    show(column?: vscode.ViewColumn, preserveFocus?: boolean): void;
    show(first?: boolean | vscode.ViewColumn, preserveFocus?: boolean): void {
        this.channel.show(typeof first === 'boolean' ? first : preserveFocus);
    }
    hide(): void {
        this.channel.hide();
    }
    dispose(): void {
        this.levelChanged.dispose();
        this.channel.dispose();
    }
}
