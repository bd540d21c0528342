"""The server's settings: one tree of frozen dataclasses, a flat camelCase dict on the wire.

Each setting is declared once, below, with its description and what it accepts; its default is the one of
the message field it fills (`inference.protocol.ModelSpec`, `GenerationOptions`: one source of truth); parsing,
warnings, the README table (`SETTINGS_TABLE_MARKDOWN`) and the VS Code `contributes.configuration`
properties (`vscode_configuration_properties`) are all read from those declarations.

Clients send the flat dict as `initializationOptions` or in `workspace/didChangeConfiguration`, either as is
or under "codegenLsp" (VS Code's section) / "codegen-lsp" / "codegen_lsp". A bad value never fails
`initialize`: it falls back to the previous (or default) value with a warning for the person to read.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from codegen_lsp.inference.protocol import DTYPE_CHOICES, GenerationOptions, ModelSpec
from codegen_lsp.inference.rules.stop_rule import StopRule
from codegen_lsp.lsp_server.backends.openai import RemoteSpec
from codegen_lsp.lsp_server.languages import AUTO, LANGUAGE_IDS, canonical_language_id
from codegen_lsp.tokenizer.truncation import DEFAULT_TRUNCATE_BEFORE_PATTERN, compile_patterns

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

SECTION_NAMES = ("codegenLsp", "codegen-lsp", "codegen_lsp")


class _Invalid(Exception):
    """A value a setting does not accept; the message says what it expected."""


@dataclass(frozen=True)
class _Accepts:
    """What one setting accepts, in words (for warnings and docs) and as a check."""

    # string | optional_string | choice | integer | optional_integer | number | boolean | patterns | languages
    kind: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is not allowed

    def describe(self) -> str:
        if self.kind == "string":
            return "a non-empty string"
        if self.kind == "optional_string":
            return "a string, or null"
        if self.kind == "choice":
            return ", ".join(f'"{c}"' for c in self.choices[:-1]) + f' or "{self.choices[-1]}"'
        if self.kind == "boolean":
            return "true or false"
        if self.kind == "patterns":
            return "a list of regular expressions (Python syntax)"
        if self.kind == "languages":
            return f'"{AUTO}", or a list of language ids: ' + ", ".join(f'"{i}"' for i in LANGUAGE_IDS)
        if self.kind == "optional_integer":
            return f"an integer from {_number(self.low)} to {_number(self.high)}, or null"
        noun = "an integer" if self.kind == "integer" else "a number"
        if self.low_open:
            return f"{noun} greater than {_number(self.low)} and at most {_number(self.high)}"
        return f"{noun} from {_number(self.low)} to {_number(self.high)}"

    def check(self, value: object) -> object:
        """The value to use, or _Invalid."""
        if self.kind == "string":
            if isinstance(value, str) and value.strip():
                return value.strip()
        elif self.kind == "optional_string":
            if value is None:
                return None
            if isinstance(value, str):
                return value.strip() or None
        elif self.kind == "optional_integer" and value is None:
            return None
        elif self.kind == "choice":
            if isinstance(value, str) and value.strip().lower() in self.choices:
                return value.strip().lower()
        elif self.kind == "boolean":
            if isinstance(value, bool):
                return value
        elif self.kind == "patterns":
            if isinstance(value, list | tuple) and all(isinstance(p, str) for p in value):
                try:
                    compile_patterns(value)
                except ValueError as error:
                    raise _Invalid(str(error)) from None
                return tuple(value)
        elif self.kind == "languages":
            if isinstance(value, str) and value.strip().lower() == AUTO:
                return AUTO
            if isinstance(value, list | tuple) and all(isinstance(i, str) for i in value):
                unknown = [i for i in value if canonical_language_id(i) is None]
                if not unknown:
                    return tuple(dict.fromkeys(canonical_language_id(i) for i in value))
                raise _Invalid(f"unknown language id(s) {_show(unknown)}; expected {self.describe()}")
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            if self.kind in ("integer", "optional_integer"):
                if value != int(value):
                    raise _Invalid(f"expected {self.describe()}")
                value = int(value)
            else:
                value = float(value)
            assert self.low is not None and self.high is not None
            below = value <= self.low if self.low_open else value < self.low
            if not below and value <= self.high:
                return value
        raise _Invalid(f"expected {self.describe()}")


def _setting(default: Any, description: str, accepts: _Accepts) -> Any:
    return field(default=default, metadata={"description": description, "accepts": accepts})


def _choice(*choices: str) -> _Accepts:
    return _Accepts("choice", choices=choices)


def _integer(low: int, high: int) -> _Accepts:
    return _Accepts("integer", low=low, high=high)


_BOOLEAN = _Accepts("boolean")
_NULLABLE = ("optional_string", "optional_integer")


@dataclass(frozen=True)
class ModelSettings:
    """What the worker loads and how; changing any of these reloads the model."""

    model: str = _setting(
        ModelSpec.model,
        "Hub id or local folder of a CodeGen checkpoint, or `bundled` for the small offline model.",
        _Accepts("string"),
    )
    revision: str | None = _setting(
        ModelSpec.revision,
        "Hub revision (branch, tag or commit) to download; null for the default branch.",
        _Accepts("optional_string"),
    )
    device: str = _setting(
        ModelSpec.device, "Where the model runs; `auto` uses CUDA when available.", _choice("auto", "cpu", "cuda")
    )
    dtype: str = _setting(
        ModelSpec.dtype,
        "Weight type; `auto` is float16 on CUDA, on the CPU bfloat16 where it is native, else float32; `int8` "
        "(CPU only) stores weights in int8 for faster decoding.",
        _choice(*DTYPE_CHOICES),
    )
    cache_reuse: bool = _setting(
        ModelSpec.cache_reuse,
        "Reuse the key/value cache of the longest common token prefix with the previous request.",
        _BOOLEAN,
    )
    cache_slots: int = _setting(
        ModelSpec.cache_slots,
        "Documents whose key/value cache is kept (least recently used goes).",
        _integer(1, 64),
    )
    cuda_graphs: bool = _setting(
        ModelSpec.cuda_graphs, "Capture the decode step as a CUDA graph (CUDA only).", _BOOLEAN
    )
    prompt_lookup: bool = _setting(
        ModelSpec.prompt_lookup,
        "Speculative decoding: draft tokens copied from earlier text and from the last suggestion, verified in "
        "one pass. Greedy output is unchanged; faster when code repeats itself or you type into a suggestion.",
        _BOOLEAN,
    )


@dataclass(frozen=True)
class BackendSettings:
    """Where completions come from: the local worker, or a team server (vLLM) over the OpenAI API."""

    backend: str = _setting(
        "local",
        "`local`: the model runs in a worker process on this machine. `openai`: completions come from a server "
        "with the OpenAI-compatible `/v1/completions` API (vLLM serving `codegen-lsp export`); `model` then only "
        "names the tokenizer and config.",
        _choice("local", "openai"),
    )
    backend_url: str = _setting(
        RemoteSpec.url, "API base of the remote backend (`openai`), e.g. `http://gpu-box:8000/v1`.", _Accepts("string")
    )
    backend_model: str | None = _setting(
        RemoteSpec.model,
        "Model name on the remote backend; null: the server's only model (from `/v1/models`).",
        _Accepts("optional_string"),
    )
    backend_api_key_env: str | None = _setting(
        RemoteSpec.api_key_env,
        "Name of the environment variable that holds the remote backend's API key (the key itself is never "
        "stored in settings or logged); null: no key.",
        _Accepts("optional_string"),
    )
    backend_timeout_ms: int = _setting(
        RemoteSpec.timeout_ms,
        "Longest wait for the remote backend's answer to one request.",
        _integer(100, 600000),
    )


@dataclass(frozen=True)
class GenerationSettings:
    """How each completion is generated."""

    max_new_tokens: int = _setting(
        GenerationOptions.max_new_tokens, "Most tokens generated per completion.", _integer(1, 1024)
    )
    temperature: float = _setting(
        GenerationOptions.temperature,
        "Sampling temperature; 0 is greedy (the same completion every time).",
        _Accepts("number", low=0, high=2),
    )
    top_p: float = _setting(
        GenerationOptions.top_p,
        "Nucleus sampling: sample from the smallest set of tokens whose probability reaches this.",
        _Accepts("number", low=0, high=1, low_open=True),
    )
    num_candidates: int = _setting(GenerationOptions.num_candidates, "Completions offered per request.", _integer(1, 8))
    seed: int | None = _setting(
        GenerationOptions.seed,
        "Seed for sampling (temperature > 0, extra candidates); null draws a fresh one each time.",
        _Accepts("optional_integer", low=0, high=2**31 - 1),
    )
    context_tokens: int = _setting(
        GenerationOptions.context_tokens,
        "Prompt budget in tokens (text before the cursor); capped by the model's context length.",
        _integer(64, 2048),
    )
    truncate_before_pattern: tuple[str, ...] = _setting(
        DEFAULT_TRUNCATE_BEFORE_PATTERN,
        "CodeGen's stop patterns for Python documents: a completion is cut before the first match (`^` = line "
        "start); an empty list turns them off. Other languages have their own (see How it works).",
        _Accepts("patterns"),
    )


@dataclass(frozen=True)
class ServerSettings:
    """How the server behaves towards the editor."""

    debounce_ms: int = _setting(
        25, "Wait this long after a keystroke before starting a completion.", _integer(0, 10000)
    )
    log_level: str = _setting(
        "info",
        "Log detail (logs go to stderr / the client's output channel).",
        _choice("debug", "info", "warning", "error"),
    )
    languages: str | tuple[str, ...] = _setting(
        AUTO,
        "Documents (LSP language ids) that get completions; `auto`: Python for a `-mono` model and the bundled "
        "one, all six languages CodeGen was trained on for the others (`-multi`, `-nl`, local models).",
        _Accepts("languages"),
    )


@dataclass(frozen=True)
class Settings:
    """All settings; the groups are for code (`needs_reload` is "the model group changed"), not the wire."""

    model: ModelSettings = field(default_factory=ModelSettings)
    backend: BackendSettings = field(default_factory=BackendSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    server: ServerSettings = field(default_factory=ServerSettings)

    def model_spec(self) -> ModelSpec:
        m = self.model
        return ModelSpec(
            model=m.model,
            revision=m.revision,
            device=m.device,
            dtype=m.dtype,
            cuda_graphs=m.cuda_graphs,
            cache_slots=m.cache_slots,
            cache_reuse=m.cache_reuse,
            prompt_lookup=m.prompt_lookup,
        )

    def remote_spec(self) -> RemoteSpec:
        b = self.backend
        return RemoteSpec(b.backend_url, b.backend_model, b.backend_api_key_env, b.backend_timeout_ms)

    def generation_options(self, stop_rule: StopRule | None) -> GenerationOptions:
        g = self.generation
        return GenerationOptions(
            max_new_tokens=g.max_new_tokens,
            temperature=g.temperature,
            top_p=g.top_p,
            num_candidates=g.num_candidates,
            seed=g.seed,
            context_tokens=g.context_tokens,
            stop_rule=stop_rule,
        )


def needs_reload(old: Settings, new: Settings) -> bool:
    """The backend must restart: the model (everything in `ModelSettings` is what `ModelSpec` carries) or
    where completions come from changed."""
    return old.model_spec() != new.model_spec() or old.backend != new.backend


@dataclass(frozen=True)
class _Leaf:
    wire: str
    group: str
    name: str
    default: Any
    description: str
    accepts: _Accepts


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _leaves() -> tuple[_Leaf, ...]:
    leaves = []
    for group in dataclasses.fields(Settings):
        for leaf in dataclasses.fields(group.default_factory):  # type: ignore[arg-type]
            leaves.append(
                _Leaf(
                    _camel(leaf.name),
                    group.name,
                    leaf.name,
                    leaf.default,
                    leaf.metadata["description"],
                    leaf.metadata["accepts"],
                )
            )
    return tuple(leaves)


_LEAVES = _leaves()
_BY_WIRE = {leaf.wire: leaf for leaf in _LEAVES}


def _number(value: float | None) -> str:
    return str(int(value)) if value is not None and value == int(value) else str(value)


def _show(value: object, limit: int = 80) -> str:
    """A value as the person wrote it in their JSON settings."""
    try:
        text = json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
            if value is None and leaf.accepts.kind not in _NULLABLE:
                continue
            try:
                changes[leaf.group][leaf.name] = leaf.accepts.check(value)
            except _Invalid as problem:
                warnings.append(f'Setting "{key}": {problem}, got {_show(value)}; using {_show(current)}.')
        groups = {name: dataclasses.replace(getattr(base, name), **values) for name, values in changes.items()}
        return Settings(**groups), warnings
    except Exception as error:  # noqa: BLE001 - a settings payload must never take the server down
        warnings.append(f"Could not read the settings ({type(error).__name__}: {error}); keeping the previous ones.")
        return base, warnings


def _section(raw: object, warnings: list[str]) -> Mapping[Any, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        warnings.append(f"Settings must be an object of name: value pairs, got {_show(raw)}; ignored.")
        return None
    for name in SECTION_NAMES:
        if name in raw:
            section = raw[name]
            if section is None or isinstance(section, Mapping):
                return section
            warnings.append(f'Settings "{name}" must be an object of name: value pairs, got {_show(section)}; ignored.')
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
    return f"Unknown setting {_show(key)}{hint}; ignored."


def to_wire(settings: Settings) -> dict[str, Any]:
    """The flat camelCase dict a client would send for `settings`."""
    wire = {}
    for leaf in _LEAVES:
        value = getattr(getattr(settings, leaf.group), leaf.name)
        wire[leaf.wire] = list(value) if isinstance(value, tuple) else value
    return wire


def settings_table_markdown() -> str:
    """The README's settings table."""
    rows = ["| Setting | Default | Accepts | Description |", "| --- | --- | --- | --- |"]
    for leaf in _LEAVES:
        cells = [
            f"`{leaf.wire}`",
            f"`{_show(leaf.default, limit=200)}`",
            leaf.accepts.describe(),
            leaf.description,
        ]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"


SETTINGS_TABLE_MARKDOWN = settings_table_markdown()

_JSON_TYPES = {
    "string": "string",
    "optional_string": ["string", "null"],
    "optional_integer": ["integer", "null"],
    "choice": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "patterns": "array",
    "languages": ["string", "array"],
}


def vscode_configuration_properties(section: str = SECTION_NAMES[0]) -> dict[str, dict[str, Any]]:
    """`contributes.configuration.properties` for the VS Code extension's package.json."""
    properties: dict[str, dict[str, Any]] = {}
    for leaf in _LEAVES:
        accepts = leaf.accepts
        prop: dict[str, Any] = {
            "type": _JSON_TYPES[accepts.kind],
            "default": list(leaf.default) if isinstance(leaf.default, tuple) else leaf.default,
            "markdownDescription": leaf.description,
        }
        if accepts.kind == "choice":
            prop["enum"] = list(accepts.choices)
        if accepts.kind == "patterns":
            prop["items"] = {"type": "string"}
        if accepts.kind == "languages":
            prop["items"] = {"type": "string", "enum": list(LANGUAGE_IDS)}
        if accepts.low is not None:
            prop["exclusiveMinimum" if accepts.low_open else "minimum"] = accepts.low
        if accepts.high is not None:
            prop["maximum"] = accepts.high
        properties[f"{section}.{leaf.wire}"] = prop
    return properties
