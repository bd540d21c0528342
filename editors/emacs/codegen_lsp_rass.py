"""A rass (rassumfrassum) preset: the user's own language server and codegen-lsp behind one Eglot connection.

Eglot runs one server per buffer. codegen-lsp.el starts

    rass --log-level info codegen_lsp_rass.py -- THEIR-SERVER ARGS... -- codegen-lsp serve --stdio

so the user's server is rass' primary (hover, definitions, diagnostics, rename, formatting ... as rass routes
them) and codegen-lsp the last one. rass (0.3.5) sends every request it does not route by capability to the
primary, so `textDocument/inlineCompletion` would reach the wrong server: this preset routes the inline
completions and codegen-lsp's own requests (`codegenLsp/...`) and commands (`codegenLsp.*`) to codegen-lsp.
rass merges the two servers' capabilities (so Eglot sees `inlineCompletionProvider`) and their diagnostics.

`initialize`: codegen-lsp.el sends codegen-lsp's settings as `initializationOptions` with the other server's
own options under `codegenLspOthers`; each server gets its own.

Runs inside rass' Python (it imports rassumfrassum), not the project's.
"""

from __future__ import annotations

from typing import Any

from rassumfrassum.frassum import LspLogic, Server

OTHERS = "codegenLspOthers"  # initializationOptions key: the other server's own options (codegen-lsp.el)
OUR_REQUESTS = ("textDocument/inlineCompletion",)
OUR_PREFIX = "codegenLsp/"  # our requests (codegenLsp/status)
OUR_COMMANDS = "codegenLsp."  # our workspace/executeCommand commands (codegenLsp.toggle, ...)


def is_ours(method: str, params: Any) -> bool:
    """Whether a client request is for codegen-lsp."""
    if method in OUR_REQUESTS or method.startswith(OUR_PREFIX):
        return True
    if method == "workspace/executeCommand" and isinstance(params, dict):
        return str(params.get("command", "")).startswith(OUR_COMMANDS)
    return False


def split_initialization_options(options: Any, ours: bool) -> Any:
    """The initializationOptions one server gets: codegen-lsp's settings, or the other server's own."""
    if not isinstance(options, dict):
        return options
    if ours:
        return {key: value for key, value in options.items() if key != OTHERS}
    return options.get(OTHERS)


class CodegenLogic(LspLogic):
    """rass' routing, with codegen-lsp (the last server) answering what is codegen-lsp's."""

    def __init__(self, servers: list[Server], *args: Any, **kwargs: Any) -> None:
        super().__init__(servers, *args, **kwargs)
        self.ours = servers[-1]

    async def on_client_request(self, method: str, params: Any, servers: list[Server]) -> Any:
        if is_ours(method, params):
            return [self.ours]
        return await super().on_client_request(method, params, servers)

    def process_request(self, method: str, params: Any, server: Server) -> Any:
        params = super().process_request(method, params, server)
        if method == "initialize" and isinstance(params, dict) and "initializationOptions" in params:
            options = split_initialization_options(params["initializationOptions"], server is self.ours)
            params = {key: value for key, value in params.items() if key != "initializationOptions"}
            if options is not None:
                params["initializationOptions"] = options
        return params


def servers() -> list[list[str]]:
    """None of its own: both come on rass' command line (`-- theirs -- codegen-lsp`)."""
    return []


def logic_class() -> type[LspLogic]:
    return CodegenLogic
