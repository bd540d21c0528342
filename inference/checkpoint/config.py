"""CodeGen's model configuration, read from a Hub `config.json` with transformers' field names and defaults."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from codegen_lsp.inference.errors import ConfigError

# transformers' aliases (CodeGenConfig.attribute_map).
ALIASES = {
    "max_position_embeddings": "n_positions",
    "hidden_size": "n_embd",
    "num_attention_heads": "n_head",
    "num_hidden_layers": "n_layer",
}
ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu", "relu", "silu", "swish", "quick_gelu")
MP_NUM = 4  # CodeGen's fused qkv_proj is laid out in 4 model-parallel groups


@dataclass(frozen=True)
class CodeGenConfig:
    """Every field of transformers' CodeGenConfig that changes the forward pass; defaults are transformers'."""

    vocab_size: int = 50400
    n_positions: int = 2048
    n_embd: int = 4096
    n_layer: int = 28
    n_head: int = 16
    rotary_dim: int | None = 64
    n_inner: int | None = None
    activation_function: str = "gelu_new"
    layer_norm_epsilon: float = 1e-5
    tie_word_embeddings: bool = False
    bos_token_id: int | None = 50256
    eos_token_id: int | list[int] | None = 50256
    # Dropouts are 0 at inference; kept so that a training run can use them.
    resid_pdrop: float = 0.0
    embd_pdrop: float = 0.0
    attn_pdrop: float = 0.0

    def __post_init__(self) -> None:
        self.validate()

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def inner_dim(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        if self.eos_token_id is None:
            return ()
        if isinstance(self.eos_token_id, int):
            return (self.eos_token_id,)
        return tuple(self.eos_token_id)

    def validate(self) -> None:
        for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.n_head % MP_NUM:
            raise ConfigError(
                f"n_head ({self.n_head}) must be a multiple of {MP_NUM}: CodeGen's qkv_proj is laid "
                f"out in {MP_NUM} groups"
            )
        if self.rotary_dim is None:
            raise ConfigError(
                "rotary_dim is null; transformers then rotates with a table as wide as n_embd, which "
                "only fits a single head, so this engine requires an explicit rotary_dim"
            )
        if not (0 < self.rotary_dim <= self.head_dim) or self.rotary_dim % 2:
            raise ConfigError(
                f"rotary_dim must be even and between 2 and the head size {self.head_dim}, got {self.rotary_dim}"
            )
        if self.n_inner is not None and (not isinstance(self.n_inner, int) or self.n_inner <= 0):
            raise ConfigError(f"n_inner must be null or a positive integer, got {self.n_inner!r}")
        if self.activation_function not in ACTIVATIONS:
            raise ConfigError(
                f"activation_function {self.activation_function!r} is not supported "
                f"(supported: {', '.join(ACTIVATIONS)})"
            )
        if not isinstance(self.layer_norm_epsilon, (int, float)) or self.layer_norm_epsilon <= 0:
            raise ConfigError(f"layer_norm_epsilon must be positive, got {self.layer_norm_epsilon!r}")
        for token_id in self.eos_token_ids + ((self.bos_token_id,) if self.bos_token_id is not None else ()):
            if not isinstance(token_id, int) or not 0 <= token_id < self.vocab_size:
                raise ConfigError(f"token id {token_id!r} is outside the vocabulary ({self.vocab_size})")

    @classmethod
    def from_dict(cls, raw: dict) -> CodeGenConfig:
        model_type = raw.get("model_type", "codegen")
        if model_type != "codegen":
            raise ConfigError(f"model_type is {model_type!r}, this engine runs 'codegen' models")
        known = {f.name for f in fields(cls)}
        values = {}
        for key, value in raw.items():
            name = ALIASES.get(key, key)
            if name in known:
                values[name] = value
        try:
            return cls(**values)
        except TypeError as exc:  # pragma: no cover - dataclass signature errors
            raise ConfigError(f"{exc}") from exc

    @classmethod
    def from_file(cls, path: str | Path) -> CodeGenConfig:
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path} is missing") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        try:
            return cls.from_dict(raw)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def to_dict(self) -> dict:
        """The config.json transformers writes for this configuration."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["n_ctx"] = self.n_positions
        out["model_type"] = "codegen"
        out["architectures"] = ["CodeGenForCausalLM"]
        return out
