"""Between the checkpoint's tensors (transformers' CodeGenForCausalLM keys) and our model's fused layout.

transformers' qkv_proj output (3E) is 4 groups (mp_num = 4), each [q | v | k] of E/4 rows, heads taken
group-major: head h lives in group h // (H / 4). Ours is [q | k | v] with heads in order, the rotary dims of q and
k reordered from interleaved pairs to halves, and fc_in appended: in_proj = (3E + I, E). out_proj and fc_out
become one (E, E + I) matrix. The mapping is a pure row/column permutation, so it is exact and invertible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from codegen_lsp.inference.checkpoint.config import MP_NUM, CodeGenConfig
from codegen_lsp.inference.errors import ModelLoadError

# Buffers that older checkpoints carry and transformers ignores.
IGNORED_KEY_SUFFIXES = ("attn.causal_mask", "attn.bias", "attn.masked_bias")


def is_ignored_key(key: str) -> bool:
    return key.endswith(IGNORED_KEY_SUFFIXES)


def expected_shapes(config: CodeGenConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor a CodeGen checkpoint must hold, with its shape."""
    E, I, V = config.n_embd, config.inner_dim, config.vocab_size  # noqa: E741
    shapes: dict[str, tuple[int, ...]] = {
        "transformer.wte.weight": (V, E),
        "transformer.ln_f.weight": (E,),
        "transformer.ln_f.bias": (E,),
        "lm_head.bias": (V,),
    }
    if not config.tie_word_embeddings:
        shapes["lm_head.weight"] = (V, E)
    for i in range(config.n_layer):
        p = f"transformer.h.{i}."
        shapes.update(
            {
                p + "ln_1.weight": (E,),
                p + "ln_1.bias": (E,),
                p + "attn.qkv_proj.weight": (3 * E, E),
                p + "attn.out_proj.weight": (E, E),
                p + "mlp.fc_in.weight": (I, E),
                p + "mlp.fc_in.bias": (I,),
                p + "mlp.fc_out.weight": (E, I),
                p + "mlp.fc_out.bias": (E,),
            }
        )
    return shapes


def check_keys(available: set[str], config: CodeGenConfig, source: str) -> None:
    """Raise one clear error naming the missing or unexpected keys."""
    expected = set(expected_shapes(config))
    if config.tie_word_embeddings:
        available = available - {"lm_head.weight"}  # a tied head may still be saved; it equals wte
    missing = sorted(expected - available)
    unexpected = sorted(k for k in available - expected if not is_ignored_key(k))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''}")
        raise ModelLoadError(f"{source}: the weights do not match config.json ({'; '.join(parts)})")


def rotary_order(head_dim: int, rotary_dim: int) -> list[int]:
    """Our dim d' of a q/k head reads transformers' dim rotary_order[d']: interleaved pairs -> halves."""
    half = rotary_dim // 2
    return [2 * d for d in range(half)] + [2 * d + 1 for d in range(half)] + list(range(rotary_dim, head_dim))


def qkv_row_order(config: CodeGenConfig) -> Tensor:
    """(3E,) index: our fused row r = [q | k | v] reads row qkv_row_order[r] of transformers' qkv_proj."""
    E, H, D = config.n_embd, config.n_head, config.head_dim
    local = E // MP_NUM  # rows of one of q, v, k inside a group
    heads_per_group = H // MP_NUM
    part_offset = {"q": 0, "v": local, "k": 2 * local}
    dims = {"q": rotary_order(D, config.rotary_dim), "k": rotary_order(D, config.rotary_dim), "v": list(range(D))}
    rows = []
    for part in ("q", "k", "v"):
        for h in range(H):
            group, local_head = divmod(h, heads_per_group)
            base = group * 3 * local + part_offset[part] + local_head * D
            rows.extend(base + d for d in dims[part])
    return torch.tensor(rows, dtype=torch.long)


def to_ours(
    get: Callable[[str], Tensor],
    config: CodeGenConfig,
    dtype: torch.dtype,
    on_layer: Callable[[int], None] | None = None,
) -> dict[str, Tensor]:
    """Our state dict from a checkpoint (converted_tensors, gathered)."""
    return dict(converted_tensors(get, config, dtype, on_layer))


def converted_tensors(
    get: Callable[[str], Tensor],
    config: CodeGenConfig,
    dtype: torch.dtype,
    on_layer: Callable[[int], None] | None = None,
) -> Iterator[tuple[str, Tensor]]:
    """Our state dict's (key, tensor) pairs from a checkpoint, layer by layer; `get(key)` returns one checkpoint
    tensor (read lazily, one at a time), so a consumer that keeps (or quantizes) each tensor as it arrives holds
    at most one layer's temporaries beside the model. on_layer(i) follows each layer."""
    shapes = expected_shapes(config)

    def tensor(key: str) -> Tensor:
        t = get(key)
        if tuple(t.shape) != shapes[key]:
            raise ModelLoadError(f"{key}: expected shape {shapes[key]}, the checkpoint has {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ModelLoadError(f"{key}: expected floating-point weights, the checkpoint has {t.dtype}")
        return t.to(dtype)

    order = qkv_row_order(config)
    wte = tensor("transformer.wte.weight")
    yield "wte.weight", wte
    yield "ln_f.weight", tensor("transformer.ln_f.weight")
    yield "ln_f.bias", tensor("transformer.ln_f.bias")
    yield "lm_head.bias", tensor("lm_head.bias")
    # A tied head is the embedding itself: the same tensor, assigned to both.
    yield "lm_head.weight", wte if config.tie_word_embeddings else tensor("lm_head.weight")
    del wte
    for i in range(config.n_layer):
        p = f"transformer.h.{i}."
        qkv = tensor(p + "attn.qkv_proj.weight")[order]  # (3E, E)
        yield f"h.{i}.in_proj.weight", torch.cat((qkv, tensor(p + "mlp.fc_in.weight")))  # (3E + I, E)
        del qkv
        yield f"h.{i}.fc_in_bias", tensor(p + "mlp.fc_in.bias")
        out = (tensor(p + "attn.out_proj.weight"), tensor(p + "mlp.fc_out.weight"))
        yield f"h.{i}.out_proj.weight", torch.cat(out, dim=1)  # (E, E + I)
        del out
        yield f"h.{i}.out_proj.bias", tensor(p + "mlp.fc_out.bias")
        yield f"h.{i}.ln_1.weight", tensor(p + "ln_1.weight")
        yield f"h.{i}.ln_1.bias", tensor(p + "ln_1.bias")
        if on_layer is not None:
            on_layer(i)


def to_checkpoint(state: dict[str, Tensor], config: CodeGenConfig) -> dict[str, Tensor]:
    """The inverse of to_ours: transformers' keys and layout, ready for model.safetensors."""
    E = config.n_embd
    inverse = torch.empty_like(qkv_row_order(config))
    inverse[qkv_row_order(config)] = torch.arange(3 * E)
    out = {
        "transformer.wte.weight": state["wte.weight"],
        "transformer.ln_f.weight": state["ln_f.weight"],
        "transformer.ln_f.bias": state["ln_f.bias"],
        "lm_head.bias": state["lm_head.bias"],
    }
    if not config.tie_word_embeddings:
        out["lm_head.weight"] = state["lm_head.weight"]
    for i in range(config.n_layer):
        p = f"transformer.h.{i}."
        in_proj, out_proj = state[f"h.{i}.in_proj.weight"], state[f"h.{i}.out_proj.weight"]
        out[p + "attn.qkv_proj.weight"] = in_proj[: 3 * E][inverse]
        out[p + "mlp.fc_in.weight"] = in_proj[3 * E :]
        out[p + "mlp.fc_in.bias"] = state[f"h.{i}.fc_in_bias"]
        out[p + "attn.out_proj.weight"] = out_proj[:, :E]
        out[p + "mlp.fc_out.weight"] = out_proj[:, E:]
        out[p + "mlp.fc_out.bias"] = state[f"h.{i}.out_proj.bias"]
        out[p + "ln_1.weight"] = state[f"h.{i}.ln_1.weight"]
        out[p + "ln_1.bias"] = state[f"h.{i}.ln_1.bias"]
    return {k: v.detach().contiguous() for k, v in out.items()}
