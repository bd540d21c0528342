"""The server's settings: one tree of frozen dataclasses, a flat camelCase dict on the wire.

- `schema.py`: every setting, declared once (default, description, what it accepts): add a setting there;
- `kinds.py`: the kinds of value a setting accepts, each described, checked and typed for VS Code in one class;
- `wire.py`: parsing a client's payload (warnings, never an exception) and writing settings back;
- `render.py`: the README table and VS Code's `package.json` properties, read from the declarations.
"""

from __future__ import annotations

from codegen_lsp.lsp_server.settings.render import (
    SETTINGS_TABLE_MARKDOWN,
    settings_table_markdown,
    vscode_configuration_properties,
)
from codegen_lsp.lsp_server.settings.schema import (
    BackendSettings,
    GenerationSettings,
    ModelSettings,
    ServerSettings,
    Settings,
    needs_reload,
)
from codegen_lsp.lsp_server.settings.wire import SECTION_NAMES, parse_settings, to_wire

__all__ = [
    "SECTION_NAMES",
    "SETTINGS_TABLE_MARKDOWN",
    "BackendSettings",
    "GenerationSettings",
    "ModelSettings",
    "ServerSettings",
    "Settings",
    "needs_reload",
    "parse_settings",
    "settings_table_markdown",
    "to_wire",
    "vscode_configuration_properties",
]
