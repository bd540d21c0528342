// What the extension sends the server, kept free of the `vscode` module so the tests can run it in Node.

/** The configuration section: settings are `codegenLsp.<name>` in VS Code, `<name>` on the wire. */
export const SECTION = 'codegenLsp';

/** Settings only the extension reads (sync_settings.py declares them); the server would warn about them. */
export const EXTENSION_ONLY_KEYS: readonly string[] = [
    'serverCommand',
    'serverArgs',
    'enabledLanguages',
    'statusBar',
    'trace.server',
];

interface ConfigurationProperties {
    [key: string]: { default?: unknown };
}

interface PackageJson {
    contributes?: { configuration?: { properties?: ConfigurationProperties } };
}

/**
 * The server's setting names, read from package.json (which sync_settings.py renders from
 * lsp_server/settings/schema.py), so a new server setting reaches the server without touching this code.
 */
export function serverSettingKeys(packageJson: PackageJson): string[] {
    const properties = packageJson.contributes?.configuration?.properties ?? {};
    const prefix = `${SECTION}.`;
    return Object.keys(properties)
        .filter((key) => key.startsWith(prefix))
        .map((key) => key.slice(prefix.length))
        .filter((key) => !EXTENSION_ONLY_KEYS.includes(key));
}

/**
 * The flat camelCase dict for `initializationOptions` and `workspace/didChangeConfiguration`.
 *
 * Every key is sent, defaults included: the server keeps a previous value for an absent key, so leaving
 * out a setting the person just removed would leave the old value in force.
 */
export function serverSettings(keys: readonly string[], get: (key: string) => unknown): Record<string, unknown> {
    const settings: Record<string, unknown> = {};
    for (const key of keys) {
        const value = get(key);
        if (value !== undefined) {
            settings[key] = value;
        }
    }
    return settings;
}

export interface ServerLaunch {
    command: string;
    args: string[];
}

/** How to start the server; `~` at the start of the command is the home folder. */
export function serverLaunch(get: (key: string) => unknown, home: string): ServerLaunch {
    const command = get('serverCommand');
    const args = get('serverArgs');
    let executable = typeof command === 'string' && command.trim() !== '' ? command.trim() : 'codegen-lsp';
    if (executable === '~' || executable.startsWith('~/')) {
        executable = home + executable.slice(1);
    }
    return {
        command: executable,
        args: Array.isArray(args) ? args.filter((arg): arg is string => typeof arg === 'string') : ['serve', '--stdio'],
    };
}

/** A document the extension gives the server: a file or an untitled buffer in one of `languages`. */
export interface DocumentFilter {
    scheme: string;
    language: string;
}

/** The client's document selector for `codegenLsp.enabledLanguages` (VS Code language ids). */
export function documentSelector(languages: unknown): DocumentFilter[] {
    const ids = Array.isArray(languages)
        ? languages.filter((id): id is string => typeof id === 'string' && id.trim() !== '').map((id) => id.trim())
        : [];
    return [...new Set(ids)].flatMap((language) => [
        { scheme: 'file', language },
        { scheme: 'untitled', language },
    ]);
}

/** Whether a document (its URI scheme and language id) is one the selector gives the server. */
export function selects(selector: readonly DocumentFilter[], scheme: string, languageId: string): boolean {
    return selector.some((filter) => filter.scheme === scheme && filter.language === languageId);
}
