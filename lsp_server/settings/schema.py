"""The settings, each declared once: a frozen dataclass field with its default, description and what it accepts.

A new setting is one `setting(...)` line in its group below; parsing and warnings (`wire.py`), the README table
and VS Code's `package.json` (`render.py`), and Emacs' defcustoms (rendered from `package.json`'s properties)
all follow from it. A default that a message field also has is read from that field (`ModelSpec`,
`GenerationOptions`, `RemoteSpec`: one source of truth).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from codegen_lsp.inference.protocol import DTYPE_CHOICES, GenerationOptions, ModelSpec
from codegen_lsp.inference.rules.stop_rule import StopRule
from codegen_lsp.lsp_server.backends import RemoteSpec
from codegen_lsp.lsp_server.backends.openai_http import url_problem
from codegen_lsp.lsp_server.languages import AUTO
from codegen_lsp.lsp_server.settings.kinds import (
    Accepts,
    Boolean,
    Choice,
    Integer,
    Languages,
    Number,
    OptionalInteger,
    OptionalText,
    Patterns,
    Text,
)
from codegen_lsp.tokenizer.truncation import DEFAULT_TRUNCATE_BEFORE_PATTERN

__all__ = [
    "BackendSettings",
    "GenerationSettings",
    "ModelSettings",
    "ServerSettings",
    "Settings",
    "needs_reload",
    "setting",
]


def setting(default: Any, description: str, accepts: Accepts) -> Any:
    """One setting: its wire name is the field's name in camelCase."""
    return field(default=default, metadata={"description": description, "accepts": accepts})


@dataclass(frozen=True)
class ModelSettings:
    """What the worker loads and how; changing any of these reloads the model."""

    model: str = setting(
        ModelSpec.model,
        "Hub id or local folder of a CodeGen checkpoint, or `bundled` for the small offline model.",
        Text(),
    )
    revision: str | None = setting(
        ModelSpec.revision,
        "Hub revision (branch, tag or commit) to download; null for the default branch.",
        OptionalText(),
    )
    device: str = setting(
        ModelSpec.device, "Where the model runs; `auto` uses CUDA when available.", Choice("auto", "cpu", "cuda")
    )
    dtype: str = setting(
        ModelSpec.dtype,
        "Weight type; `auto` is float16 on CUDA, on the CPU bfloat16 where it is native, else float32; `int8` "
        "(CPU only) stores weights in int8 for faster decoding; `int4` (CPU or CUDA) in 4 bits, groups of 64, "
        "for the largest models in the least memory (a small quality cost; prefill slower than bf16).",
        Choice(*DTYPE_CHOICES),
    )
    cache_reuse: bool = setting(
        ModelSpec.cache_reuse,
        "Reuse the key/value cache of the longest common token prefix with the previous request.",
        Boolean(),
    )
    cache_slots: int = setting(
        ModelSpec.cache_slots,
        "Documents whose key/value cache is kept (least recently used goes; fewer when they would take more than "
        "half the memory free after loading). Each holds about 2 x layers x positions x width values of the "
        "model's dtype (CodeGen-350M at a 1.5k-token window: 130 MB).",
        Integer(1, 64),
    )
    cuda_graphs: bool = setting(
        ModelSpec.cuda_graphs, "Capture the decode step as a CUDA graph (CUDA only).", Boolean()
    )
    prompt_lookup: bool = setting(
        ModelSpec.prompt_lookup,
        "Speculative decoding: draft tokens copied from earlier text and from the last suggestion, verified in "
        "one pass. Greedy output is unchanged; faster when code repeats itself or you type into a suggestion.",
        Boolean(),
    )


@dataclass(frozen=True)
class BackendSettings:
    """Where completions come from: the local worker, or a team server (vLLM) over the OpenAI API."""

    backend: str = setting(
        "local",
        "`local`: the model runs in a worker process on this machine. `openai`: completions come from a server "
        "with the OpenAI-compatible `/v1/completions` API (vLLM serving `codegen-lsp export`); `model` then only "
        "names the tokenizer and config.",
        Choice("local", "openai"),
    )
    backend_url: str = setting(
        RemoteSpec.url, "API base of the remote backend (`openai`), e.g. `http://gpu-box:8000/v1`.", Text(url_problem)
    )
    backend_model: str | None = setting(
        RemoteSpec.model,
        "Model name on the remote backend; null: the server's only model (from `/v1/models`).",
        OptionalText(),
    )
    backend_api_key_env: str | None = setting(
        RemoteSpec.api_key_env,
        "Name of the environment variable that holds the remote backend's API key (the key itself is never "
        "stored in settings or logged); null: no key.",
        OptionalText(),
    )
    backend_timeout_ms: int = setting(
        RemoteSpec.timeout_ms,
        "Longest wait for the remote backend's answer to one request.",
        Integer(100, 600000),
    )


@dataclass(frozen=True)
class GenerationSettings:
    """How each completion is generated."""

    max_new_tokens: int = setting(
        GenerationOptions.max_new_tokens, "Most tokens generated per completion.", Integer(1, 1024)
    )
    temperature: float = setting(
        GenerationOptions.temperature,
        "Sampling temperature; 0 is greedy (the same completion every time).",
        Number(0, 2),
    )
    top_p: float = setting(
        GenerationOptions.top_p,
        "Nucleus sampling: sample from the smallest set of tokens whose probability reaches this.",
        Number(0, 1, low_open=True),
    )
    num_candidates: int = setting(GenerationOptions.num_candidates, "Completions offered per request.", Integer(1, 8))
    seed: int | None = setting(
        GenerationOptions.seed,
        "Seed for sampling (temperature > 0, extra candidates); null draws a fresh one each time.",
        OptionalInteger(0, 2**31 - 1),
    )
    context_tokens: int = setting(
        GenerationOptions.context_tokens,
        "Prompt budget in tokens (text before the cursor); capped by the model's context length.",
        Integer(64, 2048),
    )
    context_snippet_tokens: int = setting(
        0,
        "Tokens of `contextTokens` for snippets of other workspace files (what the file imports, similar code, "
        "other open files) put before the file's text as comments; at most half; 0 turns them off.",
        Integer(0, 1024),
    )
    truncate_before_pattern: tuple[str, ...] = setting(
        DEFAULT_TRUNCATE_BEFORE_PATTERN,
        "CodeGen's stop patterns for Python documents: a completion is cut before the first match (`^` = line "
        "start); an empty list turns them off. Other languages have their own (see How it works).",
        Patterns(),
    )


@dataclass(frozen=True)
class ServerSettings:
    """How the server behaves towards the editor."""

    debounce_ms: int = setting(25, "Wait this long after a keystroke before starting a completion.", Integer(0, 10000))
    log_level: str = setting(
        "info",
        "Log detail (logs go to stderr / the client's output channel).",
        Choice("debug", "info", "warning", "error"),
    )
    languages: str | tuple[str, ...] = setting(
        AUTO,
        "Documents (LSP language ids) that get completions; `auto`: Python for a `-mono` model and the bundled "
        "one, all six languages CodeGen was trained on for the others (`-multi`, `-nl`, local models).",
        Languages(),
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
