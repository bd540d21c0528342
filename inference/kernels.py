"""CPU kernel dispatch and allocator tricks for the model's matrix products, kept apart from the model itself.

`Linear` is the model's projection: an nn.Linear whose forward picks the fastest CPU path for its weight's form
(a oneDNN-packed bf16 weight, one decode row of a plain weight); elsewhere (CUDA, training) it is F.linear.
inference/quantize.py swaps these modules for int8 ones after loading.
"""

from __future__ import annotations

import ctypes

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """F.linear, made for CPU decoding: a weight packed by pack_for_onednn goes through oneDNN's blocked kernel,
    and one row (a decode step) of a plain weight through a matrix-vector product, which reads the weights faster
    than the GEMM path does for a single row in bf16 (fp32 is equal either way)."""
    if weight.layout == torch._mkldnn:
        out = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, x.shape[-1]), weight, bias, "none", [], "")
        return out.view(*x.shape[:-1], -1)
    if x.numel() != x.shape[-1] or x.device.type != "cpu":
        return F.linear(x, weight, bias)
    row = x.reshape(-1)  # (K,)
    out = torch.mv(weight, row) if bias is None else torch.addmv(bias, weight, row)  # (N,)
    return out.view(*x.shape[:-1], -1)


class Linear(nn.Linear):
    """nn.Linear (same parameters, same state dict keys) through `linear`'s CPU fast paths."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)


def onednn_packing_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


def pack_for_onednn(linears: list[nn.Linear], batch_size: int = 16) -> None:
    """Reorder bf16 matrices once into oneDNN's blocked layout, in place (inference only: a packed module has no
    plain state dict). Same numbers as F.linear. Measured on this project's CPU (2 threads, DRAM-resident
    weights): one row as fast as torch.mv, 2-16 rows (a keystroke's new tokens, draft verification) about twice
    as fast as F.linear, a 1024-token prefill 20% faster."""
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
