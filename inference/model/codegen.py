"""The CodeGen model in plain PyTorch.

Same numbers as transformers' CodeGenForCausalLM, in a layout made for fast decoding. The checkpoint's tensors
are rearranged once, at load (inference/checkpoint/layout.py), so that each block runs two matrix products
instead of four:

    in_proj  = [q | k | v | fc_in]   one (E -> 3E + I) product on ln_1(x); CodeGen's qkv_proj has no bias
    out_proj = [out_proj | fc_out]   one (E + I -> E) product on [attention output | activation(fc_in)]

which is exactly CodeGen's parallel block  x + out_proj(attn(ln_1 x)) + fc_out(act(fc_in(ln_1 x))).
The rotary dimensions of q and k are reordered from GPT-J's interleaved pairs (0,1), (2,3), ... to halves
(0, rd/2), (1, rd/2+1), ...: the same permutation on q and k leaves every q.k product unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from codegen_lsp.inference.checkpoint.config import CodeGenConfig
from codegen_lsp.inference.model.kernels import Linear, attention
from codegen_lsp.inference.model.kv_cache import KVCache


def activation(name: str):
    """transformers' ACT2FN entries that CodeGen configs use."""
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "gelu":
        return F.gelu
    if name == "relu":
        return F.relu
    if name in ("silu", "swish"):
        return F.silu
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    raise ValueError(f"unsupported activation {name!r}")  # CodeGenConfig.validate() rejects it first


def rotary_tables(n_positions: int, rotary_dim: int) -> tuple[Tensor, Tensor]:
    """CodeGen's rotary angles, computed exactly as transformers does, as two (n_positions, rd) fp32 tables laid
    out for our halves order: [cos | cos] and [-sin | sin], so that a rotation is x * cos + roll(x) * sin."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, rotary_dim, 2, dtype=torch.int64) / rotary_dim))
    angles = torch.arange(n_positions, dtype=torch.int64).float()[:, None] * inv_freq  # (P, rd/2)
    cos, sin = torch.cos(angles), torch.sin(angles)
    return torch.cat((cos, cos), dim=-1), torch.cat((-sin, sin), dim=-1)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor, rotary_dim: int) -> Tensor:
    """Rotate the first `rotary_dim` dims of each head, in fp32 like transformers. x: (B, H, T, D).

    With halves (x1, x2): (x1 cos - x2 sin, x2 cos + x1 sin) = x * [cos | cos] + (x2, x1) * [-sin | sin], and
    (x2, x1) is x rolled by half: the same numbers as the pairwise form, in fewer operations per decode step."""
    rot = x[..., :rotary_dim].float()  # (B, H, T, rd)
    rotated = (rot * cos + rot.roll(rotary_dim // 2, dims=-1) * sin).to(x.dtype)  # (B, H, T, rd)
    if rotary_dim == x.shape[-1]:
        return rotated
    return torch.cat((rotated, x[..., rotary_dim:]), dim=-1)  # (B, H, T, D)


class Block(nn.Module):
    def __init__(self, config: CodeGenConfig) -> None:
        super().__init__()
        E, I = config.n_embd, config.inner_dim  # noqa: E741
        self.n_head, self.head_dim, self.rotary_dim = config.n_head, config.head_dim, config.rotary_dim
        self.ln_1 = nn.LayerNorm(E, eps=config.layer_norm_epsilon)
        self.in_proj = Linear(E, 3 * E + I, bias=False)  # [q | k | v | fc_in]
        self.fc_in_bias = nn.Parameter(torch.zeros(I))
        self.out_proj = Linear(E + I, E, bias=True)  # [attn out_proj | fc_out], bias = fc_out's
        self.act = activation(config.activation_function)
        self.attn_dropout = config.attn_pdrop
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(
        self,
        x: Tensor,
        cos: Tensor,
        sin: Tensor,
        layer: int,
        cache: KVCache | None,
        input_pos: Tensor | None,
        mask: Tensor | None,
        is_causal: bool,
    ) -> Tensor:
        B, T, E = x.shape
        H, D = self.n_head, self.head_dim
        h = self.ln_1(x)  # (B, T, E)
        projected = self.in_proj(h)  # (B, T, 3E + I)
        qk, v, mlp = projected.split((2 * E, E, projected.shape[-1] - 3 * E), dim=-1)
        qk = apply_rotary(qk.view(B, T, 2 * H, D).transpose(1, 2), cos, sin, self.rotary_dim)  # (B, 2H, T, D)
        q, k = qk.split(H, dim=1)  # (B, H, T, D) each: q and k rotate together, in one set of ops
        v = v.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        if cache is not None:
            k, v = cache.update(layer, input_pos, k, v)  # (B, H, S, D), S = the span attended to
        dropout = self.attn_dropout if self.training else 0.0
        attn = attention(q, k, v, mask, is_causal, dropout)  # (B, H, T, D)
        attn = attn.transpose(1, 2).reshape(B, T, E)  # (B, T, E)
        mlp = self.act(mlp + self.fc_in_bias)  # (B, T, I)
        out = self.out_proj(torch.cat((attn, mlp), dim=-1))  # (B, T, E)
        return x + self.resid_dropout(out)


class CodeGen(nn.Module):
    """CodeGenForCausalLM's forward pass. `forward(idx, input_pos, cache)` writes the keys and values of the
    positions `input_pos` into `cache` and attends to everything the cache holds before them."""

    def __init__(self, config: CodeGenConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=True)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.wte.weight
        cos, sin = rotary_tables(config.n_positions, config.rotary_dim)
        self.register_buffer("rotary_cos", cos, persistent=False)  # (P, rd) fp32
        self.register_buffer("rotary_sin", sin, persistent=False)  # (P, rd) fp32, signed

    @property
    def device(self) -> torch.device:
        return self.wte.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.wte.weight.dtype

    def forward(
        self,
        idx: Tensor,
        input_pos: Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
        interrupted: Callable[[], bool] | None = None,
    ) -> Tensor | None:
        """idx: (B, T) token ids at positions input_pos (T,), default 0..T-1. Returns logits (B, T or 1, V), or
        None when `interrupted` (asked after each block) said stop: the cache then holds some blocks' keys and
        values of input_pos but not all, and those positions must be computed again before they are read."""
        B, T = idx.shape
        if input_pos is None:
            input_pos = torch.arange(T, device=idx.device)
        cos, sin = self.rotary_cos[input_pos], self.rotary_sin[input_pos]  # (T, rd) each
        mask, is_causal = None, False
        if cache is None:
            is_causal = T > 1  # training / a forward without cache: positions 0..T-1
        else:
            mask, is_causal = cache.attention_mask(input_pos, T)
        x = self.drop(self.wte(idx))  # (B, T, E)
        for layer, block in enumerate(self.h):
            x = block(x, cos, sin, layer, cache, input_pos, mask, is_causal)
            if interrupted is not None and layer + 1 < len(self.h) and interrupted():
                return None
        if last_only:
            x = x[:, -1:]  # (B, 1, E)
        return self.lm_head(self.ln_f(x))  # (B, T or 1, V)

    def projections(self, head: bool = True) -> list[nn.Linear]:
        """The matrices every token goes through, in order; the head only when asked and not tied (a tied head is
        the embedding, which must stay a plain table)."""
        linears: list[nn.Linear] = [p for block in self.h for p in (block.in_proj, block.out_proj)]
        if head and not self.config.tie_word_embeddings:
            linears.append(self.lm_head)
        return linears

    def num_parameters(self) -> int:
        """Parameters counted once per storage: a tied head is the embedding."""
        unique = {p.untyped_storage().data_ptr(): p for p in self.parameters()}
        return sum(p.numel() for p in unique.values())


def init_weights(model: CodeGen, std: float = 0.02) -> None:
    """GPT-2-style initialisation for training from scratch (transformers' CodeGen uses initializer_range)."""
    for name, param in model.named_parameters():
        if name.endswith("ln_1.weight") or name.endswith("ln_f.weight"):
            nn.init.ones_(param)
        elif name.endswith("bias") or name.endswith("ln_1.bias"):
            nn.init.zeros_(param)
        elif name.endswith("out_proj.weight"):
            nn.init.normal_(param, std=std / math.sqrt(2 * model.config.n_layer))
        else:
            nn.init.normal_(param, std=std)
