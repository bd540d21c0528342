// The server's status as the status bar item shows it, and the menu behind the item. Kept free of the `vscode`
// module so the tests can run it in Node. The server owns the state (lsp_server/status.py): this renders the
// last `codegenLsp/status` it sent and holds no copy of its own.

/** The method of the server's status notification, and of the request that answers the same object. */
export const STATUS_METHOD = 'codegenLsp/status';

export type State = 'loading' | 'ready' | 'busy' | 'remoteDown' | 'error' | 'disabled' | 'stopped';

/** `codegenLsp/status`, as lsp_server/status.py sends it. */
export interface ServerStatus {
    state: State;
    message: string;
    fraction: number | null;
    model: string | null;
    device: string | null;
    dtype: string | null;
    backend: 'local' | 'openai';
    lastLatencyMs: number | null;
    enabled: boolean;
    snoozedUntil: number | null;
    disabledLanguages: string[];
    disabledUris: string[];
}

/** Codicons, one per state. */
export const ICONS: Record<State, string> = {
    loading: '$(loading~spin)',
    ready: '$(check)',
    busy: '$(sync~spin)',
    remoteDown: '$(debug-disconnect)',
    error: '$(error)',
    disabled: '$(circle-slash)',
    stopped: '$(debug-stop)',
};

/** No server yet (or no longer): what the item shows then. */
export const NOT_RUNNING: ServerStatus = {
    state: 'stopped',
    message: 'the server is not running',
    fraction: null,
    model: null,
    device: null,
    dtype: null,
    backend: 'local',
    lastLatencyMs: null,
    enabled: true,
    snoozedUntil: null,
    disabledLanguages: [],
    disabledUris: [],
};

/** The document the person looks at: its language id and its URI as the server knows it. */
export interface ActiveDocument {
    languageId: string;
    uri: string;
}

/** Whether the server would complete in `document` now: the extension sends no request otherwise. */
export function allows(status: ServerStatus | undefined, document: ActiveDocument): boolean {
    if (status === undefined) {
        return true; // not heard yet: the server decides
    }
    return (
        status.enabled &&
        !status.disabledLanguages.includes(document.languageId) &&
        !status.disabledUris.includes(document.uri)
    );
}

/** Off for this document only (its language or the file), while completions are on elsewhere. */
function offHere(status: ServerStatus, document: ActiveDocument | undefined): string | undefined {
    if (document === undefined || !status.enabled) {
        return undefined;
    }
    if (status.disabledUris.includes(document.uri)) {
        return 'this file';
    }
    return status.disabledLanguages.includes(document.languageId) ? document.languageId : undefined;
}

/** The item's text: an icon and a few words. */
export function statusText(status: ServerStatus, document?: ActiveDocument): string {
    const off = offHere(status, document);
    if (off !== undefined) {
        return `${ICONS.disabled} CodeGen off (${off})`;
    }
    const words: Record<State, string> = {
        loading: status.fraction === null ? ' loading' : ` ${Math.round(status.fraction * 100)}%`,
        ready: '',
        busy: '',
        remoteDown: ' remote down',
        error: ' error',
        disabled: status.snoozedUntil === null ? ' off' : ' snoozed',
        stopped: ' stopped',
    };
    return `${ICONS[status.state]} CodeGen${words[status.state]}`;
}

/** The item's tooltip: what runs where, how fast the last completion came, what is switched off. */
export function statusTooltip(status: ServerStatus, document?: ActiveDocument): string {
    const lines = [`CodeGen LSP: ${status.message}`];
    if (status.model !== null) {
        lines.push(`Model: ${status.model}`);
    }
    if (status.device !== null) {
        lines.push(`${status.backend === 'openai' ? 'Server' : 'Device'}: ${status.device}`);
    }
    if (status.dtype !== null) {
        lines.push(`Dtype: ${status.dtype}`);
    }
    if (status.lastLatencyMs !== null) {
        lines.push(`Last completion: ${Math.round(status.lastLatencyMs)} ms`);
    }
    const off = offHere(status, document);
    if (off !== undefined) {
        lines.push(`Off for ${off}`);
    }
    if (status.disabledLanguages.length > 0) {
        lines.push(`Off for the languages: ${status.disabledLanguages.join(', ')}`);
    }
    lines.push('Click for on/off, snooze, output, restart, health check');
    return lines.join('\n');
}

/** What a menu entry does; extension.ts carries it out. */
export type MenuAction =
    | { kind: 'setEnabled'; argument: Record<string, unknown> }
    | { kind: 'command'; command: string };

export interface MenuEntry {
    label: string;
    description?: string;
    action: MenuAction;
}

export const SNOOZE_MINUTES = 30;

/** The menu behind the status item: the switch that applies, then the rest. */
export function menuEntries(status: ServerStatus, document?: ActiveDocument): MenuEntry[] {
    const entries: MenuEntry[] = [];
    if (status.enabled) {
        entries.push({ label: '$(circle-slash) Disable completions', action: { kind: 'setEnabled', argument: { enabled: false } } });
    } else {
        const description = status.snoozedUntil === null ? undefined : 'ends the snooze';
        entries.push({ label: '$(check) Enable completions', description, action: { kind: 'setEnabled', argument: { enabled: true } } });
    }
    if (document !== undefined) {
        const languageOff = status.disabledLanguages.includes(document.languageId);
        entries.push({
            label: `${languageOff ? '$(check) Enable' : '$(circle-slash) Disable'} for ${document.languageId}`,
            action: { kind: 'setEnabled', argument: { enabled: languageOff, languageId: document.languageId } },
        });
        const fileOff = status.disabledUris.includes(document.uri);
        entries.push({
            label: `${fileOff ? '$(check) Enable' : '$(circle-slash) Disable'} for this file`,
            action: { kind: 'setEnabled', argument: { enabled: fileOff, uri: document.uri } },
        });
    }
    if (status.enabled) {
        entries.push({
            label: `$(clock) Snooze for ${SNOOZE_MINUTES} minutes`,
            action: { kind: 'setEnabled', argument: { enabled: false, snoozeMinutes: SNOOZE_MINUTES } },
        });
    }
    entries.push(
        { label: '$(output) Show output', action: { kind: 'command', command: 'codegenLsp.showOutput' } },
        { label: '$(debug-restart) Restart server', action: { kind: 'command', command: 'codegenLsp.restartServer' } },
        { label: '$(pulse) Run health check', description: 'codegen-lsp doctor', action: { kind: 'command', command: 'codegenLsp.healthCheck' } },
    );
    return entries;
}

/** `codegen-lsp doctor`'s arguments: the person's server settings, as the server would get them. */
export function doctorArgs(settings: Record<string, unknown>): string[] {
    return ['doctor', '--settings', JSON.stringify(settings)];
}

/** The verdict: doctor's last line ("codegen-lsp doctor: usable" or "...: not usable: <reason>"). */
export function doctorVerdict(stdout: string): string {
    const lines = stdout.trim().split('\n');
    return lines[lines.length - 1] ?? '';
}
