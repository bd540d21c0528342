"""Settings: one dataclass tree, a flat camelCase dict on the wire, and no payload can break the server."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codegen_lsp.inference.protocol import GenerationOptions, ModelSpec
from codegen_lsp.inference.rules.stop_rule import StopRule
from codegen_lsp.lsp_server.settings import (
    SETTINGS_TABLE_MARKDOWN,
    Settings,
    needs_reload,
    parse_settings,
    to_wire,
    vscode_configuration_properties,
)
from codegen_lsp.tokenizer.truncation import DEFAULT_TRUNCATE_BEFORE_PATTERN

DEFAULTS = {
    "model": "Salesforce/codegen-350M-mono",
    "revision": None,
    "device": "auto",
    "dtype": "auto",
    "backend": "local",
    "backendUrl": "http://127.0.0.1:8000/v1",
    "backendModel": None,
    "backendApiKeyEnv": None,
    "backendTimeoutMs": 10000,
    "maxNewTokens": 64,
    "temperature": 0.0,
    "topP": 0.95,
    "numCandidates": 1,
    "seed": None,
    "debounceMs": 25,
    "contextTokens": 1536,
    "contextSnippetTokens": 0,
    "truncateBeforePattern": list(DEFAULT_TRUNCATE_BEFORE_PATTERN),
    "cacheReuse": True,
    "cacheSlots": 8,
    "cudaGraphs": True,
    "promptLookup": True,
    "logLevel": "info",
    "languages": "auto",
}


def test_defaults_on_the_wire() -> None:
    assert to_wire(Settings()) == DEFAULTS


@pytest.mark.parametrize("raw", [None, {}, {"codegenLsp": {}}, {"codegenLsp": None}])
def test_nothing_sent_means_defaults_without_warnings(raw: object) -> None:
    assert parse_settings(raw) == (Settings(), [])


@pytest.mark.parametrize("section", [None, "codegenLsp", "codegen-lsp", "codegen_lsp"])
def test_the_flat_dict_is_read_as_is_or_under_the_section_name(section: str | None) -> None:
    flat = {"maxNewTokens": 32, "device": "cpu", "truncateBeforePattern": ["^#"]}
    settings, warnings = parse_settings(flat if section is None else {section: flat, "editor": {"x": 1}})
    assert warnings == []
    assert settings.generation.max_new_tokens == 32
    assert settings.model.device == "cpu"
    assert settings.generation.truncate_before_pattern == ("^#",)


def test_every_setting_round_trips_through_the_wire() -> None:
    wire = {
        "model": "./my-model", "revision": "main", "device": "cuda", "dtype": "bfloat16", "maxNewTokens": 128,
        "temperature": 0.2, "topP": 0.9, "numCandidates": 3, "seed": 7, "debounceMs": 0, "contextSnippetTokens": 256,
        "contextTokens": 1024, "truncateBeforePattern": [], "cacheReuse": False, "cacheSlots": 2,
        "cudaGraphs": False, "promptLookup": False, "logLevel": "debug", "backend": "openai",
        "backendUrl": "http://gpu-box:8000/v1", "backendModel": "codegen-2B", "backendApiKeyEnv": "TEAM_KEY",
        "backendTimeoutMs": 2500, "languages": ["go", "javascript"],
    }  # fmt: skip
    settings, warnings = parse_settings(wire)
    assert warnings == []
    assert to_wire(settings) == wire


@pytest.mark.parametrize(
    ("key", "bad", "used"),
    [
        ("maxNewTokens", True, 64),  # a bool is not an integer here
        ("languages", ["go", "rust"], "auto"),
        ("languages", "go", "auto"),
        ("maxNewTokens", 0, 64),
        ("maxNewTokens", 64.5, 64),
        ("maxNewTokens", "64", 64),
        ("numCandidates", 9, 1),
        ("cacheSlots", -1, 8),
        ("debounceMs", float("inf"), 25),
        ("contextTokens", [1536], 1536),
        ("temperature", float("nan"), 0.0),
        ("temperature", -0.5, 0.0),
        ("temperature", "hot", 0.0),
        ("topP", 0, 0.95),
        ("topP", 1.5, 0.95),
        ("device", "tpu", "auto"),
        ("dtype", "int3", "auto"),
        ("logLevel", "verbose", "info"),
        ("model", "", "Salesforce/codegen-350M-mono"),
        ("model", 350, "Salesforce/codegen-350M-mono"),
        ("revision", 3, None),
        ("seed", -1, None),
        ("seed", 1.5, None),
        ("seed", "42", None),
        ("cacheReuse", "yes", True),
        ("cudaGraphs", 1, True),
        ("truncateBeforePattern", ["("], list(DEFAULT_TRUNCATE_BEFORE_PATTERN)),
        ("truncateBeforePattern", "^#", list(DEFAULT_TRUNCATE_BEFORE_PATTERN)),
        ("truncateBeforePattern", ["^#", 3], list(DEFAULT_TRUNCATE_BEFORE_PATTERN)),
    ],
)
def test_an_invalid_value_falls_back_with_one_warning_naming_setting_value_and_fallback(key, bad, used) -> None:
    settings, warnings = parse_settings({key: bad})
    assert settings == Settings()
    assert len(warnings) == 1
    message = warnings[0]
    assert f'"{key}"' in message
    assert json.dumps(bad, ensure_ascii=False)[:40] in message
    assert f"using {json.dumps(used)}" in message


def test_an_invalid_regex_warning_says_what_is_wrong_with_it() -> None:
    _, [warning] = parse_settings({"truncateBeforePattern": ["^#", "(unclosed"]})
    assert "(unclosed" in warning and "missing )" in warning


def test_an_invalid_value_keeps_the_previous_value_not_the_default() -> None:
    base, _ = parse_settings({"maxNewTokens": 200})
    settings, warnings = parse_settings({"maxNewTokens": -3, "temperature": 0.5}, base)
    assert settings.generation.max_new_tokens == 200
    assert settings.generation.temperature == 0.5
    assert "using 200" in warnings[0]


def test_absent_keys_and_nulls_keep_the_previous_value() -> None:
    base, _ = parse_settings({"maxNewTokens": 200, "revision": "v1"})
    settings, warnings = parse_settings({"maxNewTokens": None, "device": "cpu"}, base)
    assert warnings == []
    assert settings.generation.max_new_tokens == 200
    assert settings.model.revision == "v1"
    assert parse_settings({"revision": None}, base)[0].model.revision is None  # revision may be null


def test_lenient_where_json_clients_differ() -> None:
    settings, warnings = parse_settings(
        {"maxNewTokens": 64.0, "temperature": 1, "device": "CUDA", "logLevel": " Debug ", "revision": ""}
    )
    assert warnings == []
    assert settings.generation.max_new_tokens == 64 and isinstance(settings.generation.max_new_tokens, int)
    assert settings.generation.temperature == 1.0 and isinstance(settings.generation.temperature, float)
    assert settings.model.device == "cuda"
    assert settings.server.log_level == "debug"
    assert settings.model.revision is None


def test_unknown_keys_are_ignored_with_a_warning_and_a_suggestion() -> None:
    settings, warnings = parse_settings({"max_new_tokens": 10, "colour": "blue", "temperature": 0.3})
    assert settings.generation.max_new_tokens == 64
    assert settings.generation.temperature == 0.3
    assert warnings == [
        'Unknown setting "max_new_tokens" (did you mean "maxNewTokens"?); ignored.',
        'Unknown setting "colour"; ignored.',
    ]


@pytest.mark.parametrize("raw", ["model=x", 42, ["maxNewTokens"], {"codegenLsp": "fast"}])
def test_a_payload_that_is_not_an_object_is_ignored_with_a_warning(raw: object) -> None:
    settings, warnings = parse_settings(raw)
    assert settings == Settings()
    assert len(warnings) == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@given(
    raw=st.one_of(
        json_values,
        st.dictionaries(st.sampled_from([*DEFAULTS, "codegenLsp", "x"]), json_values, max_size=6),
    )
)
def test_parsing_never_raises_and_always_yields_valid_settings(raw: object) -> None:
    settings, warnings = parse_settings(raw)
    again, more = parse_settings(to_wire(settings))
    assert again == settings and more == []  # whatever came out is itself valid
    assert all(isinstance(w, str) and w for w in warnings)
    g = settings.generation
    assert 1 <= g.max_new_tokens <= 1024 and 0 <= g.temperature <= 2 and 0 < g.top_p <= 1
    assert math.isfinite(g.temperature) and math.isfinite(g.top_p)


def test_model_spec_carries_the_model_settings() -> None:
    settings, _ = parse_settings(
        {"model": "m", "revision": "r", "device": "cpu", "dtype": "float32", "cacheSlots": 2,
         "cacheReuse": False, "cudaGraphs": False, "promptLookup": False}
    )  # fmt: skip
    assert settings.model_spec() == ModelSpec(
        model="m",
        revision="r",
        device="cpu",
        dtype="float32",
        cuda_graphs=False,
        cache_slots=2,
        cache_reuse=False,
        prompt_lookup=False,
    )


def test_generation_options_carry_the_generation_settings_and_the_stop_rule() -> None:
    settings, _ = parse_settings({"maxNewTokens": 16, "temperature": 0.7, "topP": 0.5, "numCandidates": 4,
                                  "contextTokens": 512, "seed": 11})  # fmt: skip
    rule = StopRule(single_line=True)
    assert settings.generation_options(rule) == GenerationOptions(
        max_new_tokens=16,
        temperature=0.7,
        top_p=0.5,
        num_candidates=4,
        seed=11,
        context_tokens=512,
        stop_rule=rule,
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [("model", "other"), ("revision", "v2"), ("device", "cpu"), ("dtype", "float16"), ("cacheSlots", 16),
     ("cacheReuse", False), ("cudaGraphs", False), ("promptLookup", False)],
)  # fmt: skip
def test_changing_what_the_worker_loads_needs_a_reload(key: str, value: object) -> None:
    old = Settings()
    assert needs_reload(old, parse_settings({key: value}, old)[0])


@pytest.mark.parametrize(
    ("key", "value"),
    [("maxNewTokens", 8), ("temperature", 0.5), ("topP", 0.5), ("numCandidates", 2), ("debounceMs", 100),
     ("contextTokens", 512), ("truncateBeforePattern", []), ("logLevel", "debug")],
)  # fmt: skip
def test_per_request_and_server_settings_apply_without_a_reload(key: str, value: object) -> None:
    old = Settings()
    new = parse_settings({key: value}, old)[0]
    assert new != old and not needs_reload(old, new)


def test_settings_are_frozen_and_hashable() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.generation.max_new_tokens = 3  # type: ignore[misc]
    assert hash(settings) == hash(Settings())


def table_cells(row: str) -> list[str]:
    """A markdown table row's cells, split at the pipes that are not escaped."""
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", row)[1:-1]]


def test_the_readme_table_has_one_row_per_setting_with_its_default() -> None:
    header, rule, *rows = SETTINGS_TABLE_MARKDOWN.strip().splitlines()
    assert header == "| Setting | Default | Accepts | Description |" and rule == "| --- | --- | --- | --- |"
    cells = [table_cells(row) for row in rows]
    assert all(len(row) == 4 and all(row) for row in cells)
    # The hand-written DEFAULTS, not the declarations the table was made from.
    assert {name.strip("`"): json.loads(default.strip("`")) for name, default, *_ in cells} == DEFAULTS
    assert len(rows) == len(DEFAULTS)
    assert "| `maxNewTokens` | `64` | an integer from 1 to 1024 |" in SETTINGS_TABLE_MARKDOWN
    assert '| `device` | `"auto"` | "auto", "cpu" or "cuda" |' in SETTINGS_TABLE_MARKDOWN
    assert all(row.count(" | ") == 3 for row in rows)  # pipes inside patterns are escaped


def test_vscode_configuration_comes_from_the_same_declarations() -> None:
    properties = vscode_configuration_properties()
    assert {key.removeprefix("codegenLsp."): p["default"] for key, p in properties.items()} == DEFAULTS
    assert properties["codegenLsp.device"]["enum"] == ["auto", "cpu", "cuda"]
    assert properties["codegenLsp.topP"]["exclusiveMinimum"] == 0
    assert properties["codegenLsp.numCandidates"]["maximum"] == 8


def test_lsp_server_modules_import_neither_torch_nor_transformers() -> None:
    import subprocess
    import sys

    modules = "codegen_lsp.lsp_server.settings, codegen_lsp.lsp_server.pipeline, codegen_lsp.inference.rules.stop_rule"
    code = f"import sys, {modules}; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
