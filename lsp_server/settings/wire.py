"""The settings on the wire: a flat camelCase dict, parsed onto the dataclass tree with a warning for each bad
value (never an exception: a settings payload must not take the server down), and written back (`to_wire`).

Clients send the flat dict as `initializationOptions` or in `workspace/didChangeConfiguration`, either as is
or under "codegenLsp" (VS Code's section) / "codegen-lsp" / "codegen_lsp". A bad value never fails
`initialize`: it falls back to the previous (or default) value with a warning for the person to read.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codegen_lsp.lsp_server.backends.openai_http import redact
from codegen_lsp.lsp_server.settings.kinds import Accepts, Invalid, shown
from codegen_lsp.lsp_server.settings.schema import Settings

__all__ = ["LEAVES", "SECTION_NAMES", "Leaf", "parse_settings", "to_wire"]

SECTION_NAMES = ("codegenLsp", "codegen-lsp", "codegen_lsp")


@dataclass(frozen=True)
class Leaf:
    """One setting as the wire and the docs see it."""

    wire: str  # camelCase name
    group: str  # the Settings field holding it
    name: str  # its field in the group
    default: Any
    description: str
    accepts: Accepts


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _leaves() -> tuple[Leaf, ...]:
    leaves = []
    for group in dataclasses.fields(Settings):
        for leaf in dataclasses.fields(group.default_factory):  # type: ignore[arg-type]
            description, accepts = leaf.metadata["description"], leaf.metadata["accepts"]
            leaves.append(Leaf(_camel(leaf.name), group.name, leaf.name, leaf.default, description, accepts))
    return tuple(leaves)


LEAVES = _leaves()
_BY_WIRE = {leaf.wire: leaf for leaf in LEAVES}


def parse_settings(raw: object, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Settings from a client payload on top of `base` (defaults if None), and warnings for a person.

    Absent keys, and null for a setting that is never null, keep `base`'s value. An invalid value keeps
    `base`'s value too and adds a warning naming the setting, the value and what is used. Never raises.
    """
    base = base if base is not None else Settings()
    warnings: list[str] = []
    try:
        section = _section(raw, warnings)
        if not section:
            return base, warnings
        changes: dict[str, dict[str, Any]] = {group.name: {} for group in dataclasses.fields(Settings)}
        for key, value in section.items():
            leaf = _BY_WIRE.get(key) if isinstance(key, str) else None
            if leaf is None:
                warnings.append(_unknown_key(key))
                continue
            current = getattr(getattr(base, leaf.group), leaf.name)
            if value is None and not leaf.accepts.nullable:
                continue
            try:
                changes[leaf.group][leaf.name] = leaf.accepts.check(value)
            except Invalid as problem:
                got = shown(redact(value) if isinstance(value, str) else value)  # no password from a URL
                warnings.append(f'Setting "{key}": {problem}, got {got}; using {shown(current)}.')
        groups = {name: dataclasses.replace(getattr(base, name), **values) for name, values in changes.items()}
        return Settings(**groups), warnings
    except Exception as error:  # noqa: BLE001 - a settings payload must never take the server down
        warnings.append(f"Could not read the settings ({type(error).__name__}: {error}); keeping the previous ones.")
        return base, warnings


def _section(raw: object, warnings: list[str]) -> Mapping[Any, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        warnings.append(f"Settings must be an object of name: value pairs, got {shown(raw)}; ignored.")
        return None
    for name in SECTION_NAMES:
        if name in raw:
            section = raw[name]
            if section is None or isinstance(section, Mapping):
                return section
            warnings.append(f'Settings "{name}" must be an object of name: value pairs, got {shown(section)}; ignored.')
            return None
    return raw


def _unknown_key(key: object) -> str:
    hint = ""
    if isinstance(key, str):
        close = difflib.get_close_matches(_camel(key.replace("-", "_")), list(_BY_WIRE), n=1, cutoff=0.6)
        if not close and _camel(key) in _BY_WIRE:
            close = [_camel(key)]
        if close:
            hint = f' (did you mean "{close[0]}"?)'
    return f"Unknown setting {shown(key)}{hint}; ignored."


def to_wire(settings: Settings) -> dict[str, Any]:
    """The flat camelCase dict a client would send for `settings`."""
    wire = {}
    for leaf in LEAVES:
        value = getattr(getattr(settings, leaf.group), leaf.name)
        wire[leaf.wire] = list(value) if isinstance(value, tuple) else value
    return wire
