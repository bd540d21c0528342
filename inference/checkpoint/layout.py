"""Between the checkpoint's tensors (transformers' CodeGenForCausalLM keys) and our model's fused layout.

transformers' qkv_proj output (3E) is 4 groups (mp_num = 4), each [q | v | k] of E/4 rows, heads taken
group-major: head h lives in group h // (H / 4). Ours is [q | k | v] with heads in order, the rotary dims of q and
k reordered from interleaved pairs to halves, and fc_in appended: in_proj = (3E + I, E). out_proj and fc_out
become one (E, E + I) matrix. The mapping is a pure row/column permutation, so it is exact and invertible.

While loading, the two fused matrices of a layer are handed out as FusedWeights, descriptions of the checkpoint
tensors they are made of: a float model builds each once (whole), a quantized one reads it a block of rows at a
time (blocks), so that the fused float matrix never exists (a 6B layer's in_proj is 235 MB in bfloat16, beside
the float16 tensors it is made of).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Rows:
    """`count` consecutive rows of a fused matrix: those of read()'s tensors (the checkpoint's, in its dtype, read
    when the first of these rows is needed) side by side, picked by `order` (None: in their own order)."""

    count: int
    read: Callable[[], tuple[Tensor, ...]]
    order: Tensor | None = None


class FusedWeight:
    """One of our fused matrices, (N, K) in `dtype`, described by the checkpoint tensors it is made of: `parts`
    stacked along the rows. Each checkpoint tensor is read when its first row is needed and dropped after its last,
    so that reading by blocks holds one part's source tensors and one block of converted rows."""

    def __init__(self, parts: list[Rows], columns: int, dtype: torch.dtype) -> None:
        self.parts, self.dtype = parts, dtype
        self.shape = (sum(part.count for part in parts), columns)  # (N, K)

    def blocks(self, size: int) -> Iterator[Tensor]:
        """The matrix's rows, `size` at a time (the last block shorter): (size, K) tensors in `dtype`."""
        pieces: list[Tensor] = []  # the rows of the block being assembled
        have = 0
        for part in self.parts:
            sources = part.read()
            start = 0
            while start < part.count:
                take = min(size - have, part.count - start)
                index = slice(start, start + take) if part.order is None else part.order[start : start + take]
                rows = [t[index].to(self.dtype) for t in sources]  # (take, K_t) each
                pieces.append(rows[0] if len(rows) == 1 else torch.cat(rows, dim=1))  # (take, K)
                del rows
                start, have = start + take, have + take
                if have == size:
                    yield pieces[0] if len(pieces) == 1 else torch.cat(pieces)  # (size, K)
                    pieces, have = [], 0
            del sources
        if pieces:
            yield pieces[0] if len(pieces) == 1 else torch.cat(pieces)

    def whole(self, block: int = 1024) -> Tensor:
        """The matrix itself, (N, K) in `dtype`, filled a block of rows at a time."""
        out = None
        start = 0
        for rows in self.blocks(block):
            if out is None:
                out = torch.empty(self.shape, dtype=self.dtype, device=rows.device)
            out[start : start + rows.shape[0]] = rows
            start += rows.shape[0]
        assert out is not None, "a fused matrix has rows"
        return out


def to_ours(
    get: Callable[[str], Tensor],
    config: CodeGenConfig,
    dtype: torch.dtype,
    on_layer: Callable[[int], None] | None = None,
) -> dict[str, Tensor]:
    """Our state dict from a checkpoint (converted_tensors, gathered, the fused matrices built)."""
    return {
        key: value.whole() if isinstance(value, FusedWeight) else value
        for key, value in converted_tensors(get, config, dtype, on_layer)
    }


def converted_tensors(
    get: Callable[[str], Tensor],
    config: CodeGenConfig,
    dtype: torch.dtype,
    on_layer: Callable[[int], None] | None = None,
) -> Iterator[tuple[str, Tensor | FusedWeight]]:
    """Our state dict's (key, tensor) pairs from a checkpoint, layer by layer; `get(key)` returns one checkpoint
    tensor (read lazily, one at a time), so a consumer that keeps (or quantizes) each tensor as it arrives holds
    at most one layer's temporaries beside the model. The fused matrices (in_proj, out_proj) come as FusedWeights,
    read when the consumer reads them. on_layer(i) follows each layer."""
    shapes = expected_shapes(config)

    def checked(key: str) -> Tensor:
        t = get(key)
        if tuple(t.shape) != shapes[key]:
            raise ModelLoadError(f"{key}: expected shape {shapes[key]}, the checkpoint has {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ModelLoadError(f"{key}: expected floating-point weights, the checkpoint has {t.dtype}")
        return t

    def tensor(key: str) -> Tensor:
        return checked(key).to(dtype)

    def reader(*keys: str) -> Callable[[], tuple[Tensor, ...]]:
        return lambda: tuple(checked(key) for key in keys)

    order = qkv_row_order(config)
    wte = tensor("transformer.wte.weight")
    yield "wte.weight", wte
    yield "ln_f.weight", tensor("transformer.ln_f.weight")
    yield "ln_f.bias", tensor("transformer.ln_f.bias")
    yield "lm_head.bias", tensor("lm_head.bias")
    # A tied head is the embedding itself: the same tensor, assigned to both.
    yield "lm_head.weight", wte if config.tie_word_embeddings else tensor("lm_head.weight")
    del wte
    E, I = config.n_embd, config.inner_dim  # noqa: E741
    for i in range(config.n_layer):
        p = f"transformer.h.{i}."
        qkv, fc_in = Rows(3 * E, reader(p + "attn.qkv_proj.weight"), order), Rows(I, reader(p + "mlp.fc_in.weight"))
        yield f"h.{i}.in_proj.weight", FusedWeight([qkv, fc_in], E, dtype)  # (3E + I, E): [q | k | v] rows, fc_in
        yield f"h.{i}.fc_in_bias", tensor(p + "mlp.fc_in.bias")
        out = Rows(E, reader(p + "attn.out_proj.weight", p + "mlp.fc_out.weight"))
        yield f"h.{i}.out_proj.weight", FusedWeight([out], E + I, dtype)  # (E, E + I): out_proj | fc_out
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
