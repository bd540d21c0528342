// Alternatives for VS Code's next/previous inline suggestion (Alt+] / Alt+[). While the person types, VS Code asks
// with `Automatic` and the server answers one candidate. The first Alt+] (or Alt+\) makes VS Code ask again with
// `Invoke` (later cycles reuse that answer): then the extension asks `codegenLsp/inlineCompletion` for a few
// candidates, the one shown first and distinct alternatives after it, as Copilot fetches alternatives on the first
// cycle. The answer is converted as vscode-languageclient converts `textDocument/inlineCompletion`'s.
import * as vscode from 'vscode';
import {
    InlineCompletionItem,
    InlineCompletionList,
    InlineCompletionParams,
    LanguageClient,
    RequestType,
} from 'vscode-languageclient/node';

/** lsp_server/server.py's INLINE_ALTERNATIVES_METHOD: the inline request plus `numCandidates` (1-8). */
export const ALTERNATIVES_REQUEST = new RequestType<
    InlineCompletionParams & { numCandidates: number },
    InlineCompletionList | InlineCompletionItem[] | null,
    void
>('codegenLsp/inlineCompletion');

/** How many candidates the first cycle asks for at least (the shown one included). */
export const ALTERNATIVES = 3;

/** The count to ask for: `ALTERNATIVES`, or the person's `codegenLsp.numCandidates` where that is more. */
export function alternativesCount(numCandidates: unknown): number {
    return typeof numCandidates === 'number' && Number.isInteger(numCandidates)
        ? Math.min(8, Math.max(ALTERNATIVES, numCandidates))
        : ALTERNATIVES;
}

/** Whether VS Code asks because the person did (Alt+\, or the first Alt+] / Alt+[), not because they typed. */
export function wantsAlternatives(context: vscode.InlineCompletionContext): boolean {
    return context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke;
}

/** `count` candidates at `position`, as VS Code's inline completion items. */
export async function provideAlternatives(
    client: LanguageClient,
    count: number,
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
): Promise<vscode.InlineCompletionList | vscode.InlineCompletionItem[] | null | undefined> {
    const params = {
        ...client.code2ProtocolConverter.asInlineCompletionParams(document, position, context),
        numCandidates: count,
    };
    try {
        const result = await client.sendRequest(ALTERNATIVES_REQUEST, params, token);
        if (token.isCancellationRequested) {
            return null;
        }
        return client.protocol2CodeConverter.asInlineCompletionResult(result, token);
    } catch (error) {
        return client.handleFailedRequest(ALTERNATIVES_REQUEST, token, error, null);
    }
}
