"""Errors the engine raises for bad input: one clear message naming the file, key or setting at fault."""

from __future__ import annotations

from codegen_lsp.inference.protocol import ErrorKind


class ModelLoadError(Exception):
    """The model could not be loaded. `kind` says why, in a form the server can act on."""

    def __init__(self, message: str, kind: ErrorKind = ErrorKind.CORRUPT_FILE) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class ConfigError(ModelLoadError):
    """config.json holds a value this engine does not support."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ErrorKind.BAD_CONFIG)
