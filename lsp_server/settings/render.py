"""The settings as documents: the README's table and VS Code's `contributes.configuration` properties (from which
Emacs' defcustoms are rendered too). Both read the declarations; neither knows a kind of value by name."""

from __future__ import annotations

from typing import Any

from codegen_lsp.lsp_server.settings.kinds import shown
from codegen_lsp.lsp_server.settings.wire import LEAVES, SECTION_NAMES

__all__ = ["SETTINGS_TABLE_MARKDOWN", "settings_table_markdown", "vscode_configuration_properties"]


def settings_table_markdown() -> str:
    """The README's settings table."""
    rows = ["| Setting | Default | Accepts | Description |", "| --- | --- | --- | --- |"]
    for leaf in LEAVES:
        cells = [f"`{leaf.wire}`", f"`{shown(leaf.default, limit=200)}`", leaf.accepts.describe(), leaf.description]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"


SETTINGS_TABLE_MARKDOWN = settings_table_markdown()


def vscode_configuration_properties(section: str = SECTION_NAMES[0]) -> dict[str, dict[str, Any]]:
    """`contributes.configuration.properties` for the VS Code extension's package.json."""
    properties: dict[str, dict[str, Any]] = {}
    for leaf in LEAVES:
        schema = leaf.accepts.json_schema()
        properties[f"{section}.{leaf.wire}"] = {
            "type": schema.pop("type"),
            "default": list(leaf.default) if isinstance(leaf.default, tuple) else leaf.default,
            "markdownDescription": leaf.description,
            **schema,
        }
    return properties
