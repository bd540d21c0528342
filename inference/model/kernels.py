"""CPU kernel dispatch and allocator tricks for the model's matrix products, kept apart from the model itself.

`Linear` is the model's projection: an nn.Linear whose forward picks the fastest CPU path for its weight's form
(a oneDNN-packed bf16 or fp32 weight, one decode row of a plain weight); elsewhere (CUDA, training) it is
F.linear.
inference/model/quantize.py swaps these modules for int8 ones after loading. `attention` is the model's attention: a
few new queries over a bf16 KV cache as two batched products on the CPU, SDPA everywhere else.
"""

from __future__ import annotations

import ctypes
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Measured on the CodeGen-350M shape's two products per block (7168 x 1024, 1024 x 5120; 20 blocks, 2 threads,
# median of 30 interleaved runs), ms per 20 blocks by rows: bf16 1: 16.6, 2: 19.4, 3: 15.0, 4: 14.3, 6: 14.9,
# 8: 19.1; fp32 1: 22.8, 2: 24.9, 3: 20.5, 4: 19.4, 6: 18.8, 8: 23.2. A whole decode step (1 row padded to 4,
# alternating in one process, median): bf16 29.6 -> 27.5 ms, fp32 46.1 -> 38.6 ms; at 1.5k context bf16 38.9 -> 36.2.
ONEDNN_MIN_ROWS = 4


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """F.linear, made for CPU decoding: a weight packed by pack_for_onednn (what the loader does on the CPU) goes
    through oneDNN's blocked kernel, and one row (a decode step) of a plain weight through a matrix-vector
    product, which reads the weights faster than the GEMM path does for a single row in bf16.

    oneDNN reads a packed weight faster for 3-6 rows than for 1 or 2 (another kernel shape): fewer rows are padded
    to ONEDNN_MIN_ROWS. Each row's sums are the same either way (measured equal bit for bit)."""
    if weight.layout == torch._mkldnn:
        rows = x.reshape(-1, x.shape[-1])  # (R, K)
        R = rows.shape[0]
        if R < ONEDNN_MIN_ROWS:  # a decode step or a short keystroke: zero rows added, their outputs dropped
            rows = F.pad(rows, (0, 0, 0, ONEDNN_MIN_ROWS - R))  # (ONEDNN_MIN_ROWS, K)
        out = torch.ops.mkldnn._linear_pointwise(rows, weight, bias, "none", [], "")[:R]  # (R, N)
        return out.view(*x.shape[:-1], -1)
    if x.numel() != x.shape[-1] or x.device.type != "cpu":
        return F.linear(x, weight, bias)
    row = x.reshape(-1)  # (K,)
    out = torch.mv(weight, row) if bias is None else torch.addmv(bias, weight, row)  # (N,)
    return out.view(*x.shape[:-1], -1)


# Up to this many new queries (a decode step: 1; a draft verification: 1 + 8) attend to a bf16 cache through
# `few_query_attention` once the cache holds at least MIN_POSITIONS_PER_QUERY positions per query; more queries
# (a prefill chunk) or a short cache go through SDPA's flash kernel. Crossover measured on the CodeGen-350M shape
# (16 heads of 64): one query, SDPA is faster up to ~128 positions (34 vs 97 us at 16), then slower (993 vs 404
# us at 1024); nine queries, SDPA is faster up to ~1k positions.
FEW_QUERIES = 16
MIN_POSITIONS_PER_QUERY = 128


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, is_causal: bool, dropout: float) -> Tensor:
    """softmax(q k^T / sqrt(D) + mask) v. q: (B, H, T, D); k, v: (B, H, S, D); mask: (T, S) bool, True = seen."""
    T, S = q.shape[2], k.shape[2]
    if (
        q.device.type == "cpu"
        and q.dtype == torch.bfloat16
        and T <= FEW_QUERIES
        and S >= MIN_POSITIONS_PER_QUERY * T
        and not is_causal
        and dropout == 0.0
    ):
        return few_query_attention(q, k, v, mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=dropout)


def few_query_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """Attention of T new queries over a bf16 cache of S positions as two batched matrix products, softmax in
    fp32. On the CPU, SDPA's flash kernel reads a 1.5k-position cache at a few GB/s for one query (it is built
    for blocks of queries): measured on the CodeGen-350M shape, a decode step at 1.5k positions takes 59 ms with
    it and 42 ms with this. The scores are rounded to bf16 once before the softmax (bmm has no fp32 output on the
    CPU): on the bundled model, mean |logit - fp32 logit| 0.0131 (SDPA) vs 0.0140 (this), same held-out loss."""
    B, H, T, D = q.shape
    S = k.shape[2]
    keys, values = k.reshape(B * H, S, D), v.reshape(B * H, S, D)  # views: the cache slice's rows are contiguous
    scores_bf16 = torch.bmm(keys, q.reshape(B * H, T, D).transpose(1, 2))  # (BH, S, T): K q, row-major K
    scores = torch.empty(B * H, T, S, dtype=torch.float32, device=q.device)
    scores.copy_(scores_bf16.transpose(1, 2)).mul_(1 / math.sqrt(D))  # (BH, T, S) fp32, rows contiguous
    if mask is not None:
        scores.masked_fill_(~mask, float("-inf"))  # (T, S) broadcast over BH
    weights = torch.softmax(scores, dim=-1).to(v.dtype)  # (BH, T, S)
    return torch.bmm(weights, values).view(B, H, T, D)


class Linear(nn.Linear):
    """nn.Linear (same parameters, same state dict keys) through `linear`'s CPU fast paths."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)


def onednn_packing_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


def pack_for_onednn(linears: list[nn.Linear], batch_size: int = 16) -> None:
    """Reorder bf16 or fp32 matrices once into oneDNN's blocked layout, in place (inference only: a packed weight
    is a mkldnn tensor; `.to_dense()` gives the plain matrix back exactly). Same numbers as F.linear, up to the
    order of the sums. Measured on the CodeGen-350M shape (2 threads, DRAM-resident weights):
      bf16: one row as fast as torch.mv, 2-16 rows (a keystroke's new tokens, draft verification) about twice
            as fast as F.linear, a 1024-token prefill 20% faster;
      fp32: one row 1.8x faster than torch.mv (a decode step 75 -> 46 ms: MKL's sgemv read 16 GB/s, the packed
            kernel 30), a 9-row draft pass 3.7x faster (199 -> 53 ms), a 1024-token prefill 3.8 -> 3.1 s."""
    for projection in linears:
        packed = torch.ops.mkldnn._reorder_linear_weight(projection.weight.detach(), batch_size)
        projection.weight = nn.Parameter(packed, requires_grad=False)
        release_freed_memory()  # the plain copy: otherwise malloc keeps it, and the process holds both


def release_freed_memory() -> None:
    """Give memory that was freed back to the system (glibc's malloc_trim; a no-op elsewhere)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc; Windows has no CDLL(None)
        pass
