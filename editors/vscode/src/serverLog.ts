// The server's stderr in the output channel at each line's own level (vscode-languageclient would mark
// every stderr line as an error). Kept free of the `vscode` module so the tests can run it in Node.

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

export interface LogSink {
    trace(message: string): void;
    debug(message: string): void;
    info(message: string): void;
    warn(message: string): void;
    error(message: string): void;
}

// lsp_server/logging_setup.py: "%(asctime)s codegen-lsp %(levelname)s %(name)s: %(message)s"
const SERVER_LINE = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ codegen-lsp (DEBUG|INFO|WARNING|ERROR|CRITICAL) (.*)$/;

const LEVELS: Record<string, LogLevel> = {
    DEBUG: 'debug',
    INFO: 'info',
    WARNING: 'warn',
    ERROR: 'error',
    CRITICAL: 'error',
};

/**
 * The level and text of one stderr line. A line of the server's own log keeps its level (the channel adds
 * the time again); anything else (a traceback, a library's warning) is shown as a warning.
 */
export function parseServerLine(line: string): { level: LogLevel; text: string } {
    const match = SERVER_LINE.exec(line);
    if (match === null) {
        return { level: 'warn', text: line };
    }
    return { level: LEVELS[match[1]], text: match[2] };
}

export function logServerLine(sink: LogSink, line: string): void {
    const { level, text } = parseServerLine(line);
    sink[level](text);
}
