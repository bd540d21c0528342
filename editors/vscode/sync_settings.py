#!/usr/bin/env python3
"""Writes (or with --check, verifies) package.json's `contributes.configuration.properties`.

The server's settings are declared once, in `lsp_server/settings/schema.py`; this renders them under
`codegenLsp.*` and adds the few settings only the extension reads (how to start the server, tracing).
Run it after changing a setting: `python3 editors/vscode/sync_settings.py`.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PACKAGE_JSON = HERE / "package.json"
sys.path.insert(0, str(HERE.parents[1]))

from codegen_lsp.lsp_server.settings import vscode_configuration_properties  # noqa: E402

SECTION = "codegenLsp"

# The VS Code language ids the extension gives the server by default (`codegenLsp.enabledLanguages`); the
# extension activates when a document of one of them opens (package.json's activationEvents).
LANGUAGES = ("c", "cpp", "go", "java", "javascript", "javascriptreact", "python")

# Read by src/extension.ts (EXTENSION_ONLY_KEYS in src/settings.ts), never sent to the server.
EXTENSION_PROPERTIES: dict[str, dict[str, Any]] = {
    f"{SECTION}.serverCommand": {
        "type": "string",
        "default": "codegen-lsp",
        "markdownDescription": "The language server's executable: a name on `PATH` or an absolute path "
        "(for example the `codegen-lsp` of a virtual environment). Changing it restarts the server.",
        "scope": "machine-overridable",
    },
    f"{SECTION}.serverArgs": {
        "type": "array",
        "items": {"type": "string"},
        "default": ["serve", "--stdio"],
        "markdownDescription": "Arguments for `#codegenLsp.serverCommand#`; the server must speak LSP on "
        "stdin/stdout. Changing them restarts the server.",
        "scope": "machine-overridable",
    },
    f"{SECTION}.enabledLanguages": {
        "type": "array",
        "items": {"type": "string"},
        "default": list(LANGUAGES),
        "markdownDescription": "VS Code language ids of the documents the extension gives the server (it completes "
        "those it knows). Changing them restarts the server.",
    },
    f"{SECTION}.statusBar": {
        "type": "boolean",
        "default": True,
        "markdownDescription": "Show the server's status in the status bar (loading, ready, generating, off, "
        "error; the tooltip names the model, device, dtype and the last completion's latency). A click opens the "
        "menu: on/off, off for this language or file, snooze, output, restart, health check.",
    },
    f"{SECTION}.trace.server": {
        "type": "string",
        "enum": ["off", "messages", "verbose"],
        "default": "off",
        "markdownDescription": "Log the LSP messages between VS Code and the server to the "
        "`CodeGen LSP Trace` output channel.",
    },
}


def expected_properties() -> dict[str, dict[str, Any]]:
    return {**vscode_configuration_properties(section=SECTION), **EXTENSION_PROPERTIES}


def expected_activation_events() -> list[str]:
    return [f"onLanguage:{language}" for language in LANGUAGES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if package.json is out of date")
    args = parser.parse_args(argv)
    package = json.loads(PACKAGE_JSON.read_text(encoding="utf-8"))
    properties = package["contributes"]["configuration"]["properties"]
    wanted = json.loads(json.dumps(expected_properties()))
    events = expected_activation_events()
    # compared as values: npm writes 0.0 as 0
    if properties == wanted and list(properties) == list(wanted) and package.get("activationEvents") == events:
        return 0
    if args.check:
        sys.stdout.writelines(
            difflib.unified_diff(
                json.dumps({"activationEvents": package.get("activationEvents"), **properties}, indent=2).splitlines(
                    keepends=True
                ),
                json.dumps({"activationEvents": events, **wanted}, indent=2).splitlines(keepends=True),
                "package.json",
                "lsp_server/settings/schema.py + sync_settings.py",
            )
        )
        print("package.json is out of date: run python3 editors/vscode/sync_settings.py", file=sys.stderr)
        return 1
    package["activationEvents"] = events
    package["contributes"]["configuration"]["properties"] = wanted
    PACKAGE_JSON.write_text(json.dumps(package, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
